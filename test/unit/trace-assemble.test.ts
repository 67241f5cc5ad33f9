import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serviceRuleset, type ServiceState } from '../../src/lab/services.js';
import { assembleHops, summarize } from '../../src/trace/assemble.js';
import { traceHtml } from '../../src/trace/html.js';
import type { WatchedNs } from '../../src/trace/lab-target.js';
import { parseTraceLine, passages } from '../../src/trace/nft-trace.js';
import { traceText } from '../../src/trace/text.js';
import type { RawHop, RawLayer, TraceResult } from '../../src/trace/types.js';

const layer = (src: string, dst: string, o: Partial<RawLayer> = {}): RawLayer => ({
  src,
  dst,
  proto: 6,
  ttl: 64,
  len: 60,
  id: 1,
  frag: 0,
  sport: 40000,
  dport: 80,
  tcpFlags: 2,
  seq: 7,
  ack: 0,
  icmpType: 0,
  icmpCode: 0,
  encap: 'none',
  vni: 0,
  ...o,
});
const hop = (
  ts: number,
  netns: string,
  ifindex: number,
  kind: RawHop['kind'],
  dir: RawHop['dir'],
  layers: RawLayer[],
  extra: Partial<RawHop> = {},
): RawHop => ({
  ev: 'hop',
  kind,
  dir,
  ts,
  netns,
  ifindex,
  len: 74,
  mark: 0,
  pktType: 0,
  icmpError: false,
  layers,
  ...extra,
});
const ns = (
  name: string,
  cookie: string,
  host: string,
  role: WatchedNs['role'],
  devs: [number, string, string, number][],
): WatchedNs => ({
  name,
  cookie,
  host,
  role,
  nft: role === 'node',
  devices: devs.map(([ifindex, ifname, kind, mtu]) => ({ ifindex, ifname, kind, mtu, addresses: [] })),
});

const VIP = '10.96.0.10';
const A = '10.244.1.2';
const B = '10.244.2.3';
const namespaces = [
  ns('pa', '1', 'n1', 'pod', [[2, 'eth0', 'veth', 1450]]),
  ns('n1', '2', 'n1', 'node', [
    [2, 'eth0', 'veth', 1500],
    [3, 'weft.1', 'vxlan', 1450],
    [5, 'vethA', 'veth', 1450],
  ]),
  ns('n2', '3', 'n2', 'node', [
    [2, 'eth0', 'veth', 1500],
    [3, 'weft.1', 'vxlan', 1450],
    [6, 'vethB', 'veth', 1450],
  ]),
  ns('pb', '4', 'n2', 'pod', [[2, 'eth0', 'veth', 1450]]),
];
const vx = (src: string, dst: string) =>
  layer(src, dst, { proto: 17, sport: 55555, dport: 8472, encap: 'vxlan', vni: 1 });
const synAck = { tcpFlags: 0x12, sport: 80, dport: 40000 };
// a SYN to a service VIP, DNATed on n1, across VXLAN to n2, and its SYN-ACK un-DNATed on the way back
const raw: RawHop[] = [
  hop(1000, '1', 2, 'egress', 'request', [layer(A, VIP)]),
  hop(3000, '2', 5, 'ingress', 'request', [layer(A, VIP)]),
  hop(9000, '2', 3, 'egress', 'request', [layer(A, B)]),
  hop(12000, '2', 2, 'egress', 'request', [vx('198.18.0.11', '198.18.0.12'), layer(A, B, { ttl: 63 })]),
  hop(14000, '3', 2, 'ingress', 'request', [vx('198.18.0.11', '198.18.0.12'), layer(A, B, { ttl: 63 })]),
  hop(17000, '3', 3, 'ingress', 'request', [layer(A, B, { ttl: 63 })]),
  hop(19000, '3', 6, 'egress', 'request', [layer(A, B, { ttl: 62 })]),
  hop(20000, '4', 2, 'ingress', 'request', [layer(A, B, { ttl: 62 })]),
  hop(25000, '4', 2, 'egress', 'reply', [layer(B, A, synAck)]),
  hop(27000, '3', 6, 'ingress', 'reply', [layer(B, A, synAck)]),
  hop(31000, '3', 2, 'egress', 'reply', [vx('198.18.0.12', '198.18.0.11'), layer(B, A, synAck)]),
  hop(33000, '2', 2, 'ingress', 'reply', [vx('198.18.0.12', '198.18.0.11'), layer(B, A, synAck)]),
  hop(35000, '2', 3, 'ingress', 'reply', [layer(B, A, synAck)]),
  hop(37000, '2', 5, 'egress', 'reply', [layer(VIP, A, synAck)]),
  hop(38000, '1', 2, 'ingress', 'reply', [layer(VIP, A, synAck)]),
  hop(99000, '9', 2, 'ingress', 'reply', [layer(VIP, A, synAck)]), // not a watched namespace
];
const nftLines = [
  `trace id aa ip weft-trace-1 pre packet: iif "vethA" ip saddr ${A} ip daddr ${VIP} tcp sport 40000 tcp dport 80`,
  'trace id aa ip weft-trace-1 pre rule tcp sport 40000 meta nftrace set 1 (verdict continue)',
  'trace id aa ip weft-svc services rule ip daddr . meta l4proto . th dport vmap @service-ips (verdict goto service-web-tcp-80)',
  'trace id aa ip weft-svc nat-prerouting rule jump services (verdict jump services)',
  `trace id aa ip weft-svc endpoint-web rule meta l4proto tcp dnat to ${B}:80 (verdict accept)`,
  `trace id aa ip weft forward packet: iif "vethA" oif "weft.1" ip saddr ${A} ip daddr ${B}`,
  'trace id aa ip weft forward rule ip saddr 10.244.0.0/16 counter packets 3 bytes 180 accept (verdict accept)',
  'trace id aa ip weft forward rule ip saddr 10.244.0.0/16 counter packets 3 bytes 180 accept (verdict accept)',
];

test('nft monitor trace lines: parsed, grouped per packet, only deciding rules kept, counters dropped', () => {
  assert.deepEqual(parseTraceLine(nftLines[4]!), {
    id: 'aa',
    family: 'ip',
    table: 'weft-svc',
    chain: 'endpoint-web',
    kind: 'rule',
    text: `meta l4proto tcp dnat to ${B}:80`,
    verdict: 'accept',
  });
  assert.equal(parseTraceLine('something else'), undefined);
  const [p] = passages('n1', nftLines);
  assert.deepEqual(
    p!.verdicts.map((v) => `${v.chain}: ${v.rule} → ${v.verdict}`),
    [
      'services: ip daddr . meta l4proto . th dport vmap @service-ips → goto service-web-tcp-80',
      `endpoint-web: meta l4proto tcp dnat to ${B}:80 → accept`,
      'forward: ip saddr 10.244.0.0/16 accept → accept',
      'forward: ip saddr 10.244.0.0/16 accept → accept',
    ],
  );
  assert.deepEqual(p!.packets[0], { saddr: A, daddr: VIP, sport: 40000, dport: 80, iif: 'vethA' });
});

test('hops: events, encapsulation, NAT both ways, netfilter on its namespace visit, summary', () => {
  const input = {
    raw,
    namespaces,
    nft: passages('n1', nftLines),
    proto: 'tcp' as const,
    originNetns: 'pa',
    outcome: 'reply' as const,
    nameOf: (ip: string) => ({ [B]: 'pb' })[ip],
    nodeIps: new Set(['198.18.0.11', '198.18.0.12']),
  };
  const hops = assembleHops(input);
  assert.equal(hops.length, 15, 'the unwatched namespace is left out');
  assert.deepEqual(
    hops.map((h) => `${h.netns}/${h.device}/${h.event}`),
    [
      'pa/eth0/sent',
      'n1/vethA/received',
      'n1/weft.1/NAT',
      'n1/eth0/encapsulated',
      'n2/eth0/received',
      'n2/weft.1/decapsulated',
      'n2/vethB/forwarded',
      'pb/eth0/delivered',
      'pb/eth0/sent',
      'n2/vethB/received',
      'n2/eth0/encapsulated',
      'n1/eth0/received',
      'n1/weft.1/decapsulated',
      'n1/vethA/NAT',
      'pa/eth0/delivered',
    ],
  );
  assert.deepEqual(hops[2]!.nat, { kind: 'DNAT', from: `${VIP}:80`, to: `${B}:80`, endpoint: 'pb' });
  assert.deepEqual(hops[13]!.nat, { kind: 'un-DNAT', from: `${B}:80`, to: `${VIP}:80` });
  assert.deepEqual(hops[3]!.outer, [
    { src: '198.18.0.11', dst: '198.18.0.12', udpPort: 8472, kind: 'vxlan', vni: 1, owner: 'weft' },
  ]);
  assert.deepEqual([hops[0]!.tNs, hops[1]!.dtNs, hops[14]!.tNs], [0, 2000, 37000]);
  // n1's request visit ends at eth0: its netfilter rules go there, each once
  assert.equal(hops[3]!.netfilter?.length, 3);
  assert.ok(hops[3]!.netfilter!.some((v) => v.rule.includes('dnat to')));
  const s = summarize(hops, { outcome: 'reply', originNetns: 'pa', targetName: 'pb' });
  assert.equal(s.verdict, 'delivered');
  assert.equal(s.rttNs, 37000);
  assert.equal(s.pathMtu, 1450);
  const total = s.segments.reduce((n, x) => n + x.ns, 0);
  assert.equal(total, 37000, 'the segments add up to the round trip');
  assert.equal(s.segments.find((x) => x.segment === 'responder')?.ns, 5000);
});

test('a drop: the kernel reason in words, the deciding rule, verdict dropped; HTML is self-contained', () => {
  const dropped: RawHop[] = [
    raw[0]!,
    raw[1]!,
    hop(5000, '2', 5, 'drop', 'request', [layer(A, VIP)], {
      reason: 'NETFILTER_DROP',
      location: 'nft_do_chain+0x46f',
    }),
  ];
  const lines = [
    `trace id bb ip deny forward packet: iif "vethA" ip saddr ${A} ip daddr ${VIP}`,
    `trace id bb ip deny forward rule ip daddr ${VIP} drop (verdict drop)`,
  ];
  const hops = assembleHops({
    raw: dropped,
    namespaces,
    nft: passages('n1', lines),
    proto: 'tcp',
    originNetns: 'pa',
    outcome: 'timeout',
    nameOf: () => undefined,
    nodeIps: new Set(),
  });
  const d = hops[2]!;
  assert.equal(d.event, 'dropped');
  assert.deepEqual(d.drop, {
    reason: 'NETFILTER_DROP',
    location: 'nft_do_chain+0x46f',
    explanation: 'a netfilter rule dropped it',
  });
  assert.deepEqual(d.netfilter, [
    { table: 'ip deny', chain: 'forward', rule: `ip daddr ${VIP} drop`, verdict: 'drop' },
  ]);
  const s = summarize(hops, { outcome: 'timeout', originNetns: 'pa', targetName: 'x' });
  assert.equal(s.verdict, 'dropped');
  assert.match(s.why, /NETFILTER_DROP.*"ip daddr 10\.96\.0\.10 drop" in ip deny forward/);
  const t: TraceResult = {
    lab: 'l',
    from: { name: 'pa', netns: 'pa', ip: A },
    to: { name: 'web', ip: VIP, port: 80 },
    proto: 'tcp',
    clock: 'one clock',
    netfilterTraced: true,
    hops,
    summary: { ...s, dataPath: [] },
    timings: { setupMs: 1, probeMs: 1, teardownMs: 1 },
    kernel: { loaderPid: 1, progIds: [1, 2], links: 4, traceTable: 'weft-trace-1', namespaces: 2 },
    warnings: [],
  };
  const html = traceHtml(t);
  assert.doesNotMatch(html, /(src|href)\s*=\s*["']?(https?:|\/\/)/i, 'nothing fetched from elsewhere');
  assert.doesNotMatch(html, /<script/i);
  assert.equal((html.match(/class="ns"/g) ?? []).length, 2, 'one lane per namespace');
  assert.match(html, /<circle[^>]*r="7" fill="#d11"/, 'the drop in red');
  assert.match(html, /<title>#3 request dropped/, 'headers on hover');
  assert.match(traceText(t), /DROPPED: NETFILTER_DROP/);
});

test("services: kube-proxy's table — dispatch map, random choice, hairpin masquerade, reject without endpoints, NodePort", () => {
  const svc = (o: Partial<ServiceState>): ServiceState => ({
    name: 'web',
    vip: VIP,
    port: 80,
    targetPort: 8080,
    proto: 'tcp',
    endpoints: [],
    ...o,
  });
  const text = serviceRuleset(
    [
      svc({ endpoints: ['pa', 'pb'], nodePort: 30080 }),
      svc({ name: 'none', vip: '10.96.0.11', port: 81, endpoints: [] }),
    ],
    new Map([
      ['pa', A],
      ['pb', B],
    ]),
    '10.244.0.0/16',
  );
  assert.match(text, /^table ip weft-svc\ndelete table ip weft-svc\n/, 'replaced atomically');
  assert.match(text, new RegExp(`${VIP.replace(/\./g, '\\.')} \\. tcp \\. 80 : goto service-web-tcp-80`));
  assert.match(
    text,
    /numgen random mod 2 vmap \{ 0 : goto endpoint-web-10-244-1-2-8080, 1 : goto endpoint-web-10-244-2-3-8080 \}/,
  );
  assert.match(
    text,
    new RegExp(
      `ip saddr ${A.replace(/\./g, '\\.')} jump mark-for-masquerade\\n    meta l4proto tcp dnat to ${A.replace(/\./g, '\\.')}:8080`,
    ),
  );
  assert.match(text, /10\.96\.0\.11 \. tcp \. 81 : goto reject-chain/);
  assert.match(text, /tcp \. 30080 : goto external-web-tcp-80/);
  assert.doesNotMatch(text, /table ip weft \{/, "never the agent's table");
});
