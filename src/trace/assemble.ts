import type { WatchedNs } from './lab-target.js';
import type { NftPassage } from './nft-trace.js';
import type {
  Header,
  Hop,
  HopEvent,
  Nat,
  OuterHeader,
  ProbeOutcome,
  Proto,
  RawHop,
  RawLayer,
  Role,
  Segment,
  TraceSummary,
} from './types.js';

/**
 * Turns the loader's sightings into the trace a user reads: hops in order with their event (sent,
 * received, forwarded, encapsulated, decapsulated, NAT, delivered, dropped), the probe's own header
 * and the encapsulation around it, the NAT rewrite where the probe's addresses change, the netfilter
 * rules that decided, drop reasons in words, and a summary (verdict, round trip, time per segment and
 * per host, path MTU).
 */

export interface AssembleInput {
  raw: RawHop[];
  namespaces: WatchedNs[];
  nft: NftPassage[];
  proto: Proto;
  originNetns: string;
  outcome: ProbeOutcome;
  /** Name of a lab address (pods, nodes, ext), for NAT endpoints and outer-header owners. */
  nameOf: (ip: string) => string | undefined;
  /** Addresses of weft nodes (their VXLAN is weft's; other encapsulation is the cloud's). */
  nodeIps: Set<string>;
}

const TCP_FLAG_NAMES: [number, string][] = [
  [0x02, 'SYN'],
  [0x10, 'ACK'],
  [0x04, 'RST'],
  [0x01, 'FIN'],
  [0x08, 'PSH'],
];
const ICMP_TYPES: Record<number, string> = {
  0: 'echo-reply',
  3: 'unreachable',
  8: 'echo-request',
  11: 'time-exceeded',
  12: 'parameter-problem',
};
const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp' };

export function header(l: RawLayer): Header {
  const h: Header = {
    src: l.src,
    dst: l.dst,
    proto: PROTO_NAMES[l.proto] ?? String(l.proto),
    len: l.len,
    ttl: l.ttl,
    ipId: l.id,
  };
  if (l.proto === 6 || l.proto === 17) {
    h.sport = l.sport;
    h.dport = l.dport;
  }
  if (l.proto === 6)
    h.tcpFlags = TCP_FLAG_NAMES.filter(([b]) => l.tcpFlags & b)
      .map(([, n]) => n)
      .join('|');
  if (l.proto === 1) {
    const unreachable = ['net', 'host', 'protocol', 'port', 'fragmentation-needed'];
    const type =
      l.icmpType === 3
        ? l.icmpCode === 13
          ? 'admin-prohibited'
          : `${unreachable[l.icmpCode] ?? `code-${l.icmpCode}`}-unreachable`
        : (ICMP_TYPES[l.icmpType] ?? `type ${l.icmpType}/${l.icmpCode}`);
    h.icmp = { type, id: l.sport, seq: l.dport };
  }
  return h;
}

/** Why the kernel dropped it, in words (the names are the kernel's enum skb_drop_reason). */
export function explainDrop(reason: string, location = ''): string {
  if (reason === 'NOT_SPECIFIED') {
    const fn = location.split('+')[0] ?? '';
    if (/^br_(handle_frame_finish|forward|flood)/.test(fn))
      return `the bridge did not forward it (${fn}); a frame going back out the port it came in on needs hairpin mode on that port`;
    return fn ? `the kernel gave no reason; freed in ${fn}` : 'the kernel gave no reason';
  }
  const words: Record<string, string> = {
    NETFILTER_DROP: 'a netfilter rule dropped it',
    NO_ROUTE: 'no route to the destination',
    IP_INNOROUTES: 'no route to the destination (input)',
    IP_OUTNOROUTES: 'no route to the destination (output)',
    IP_INADDRERRORS: 'invalid destination address',
    NEIGH_FAILED: 'no ARP answer from the next hop',
    NEIGH_QUEUEFULL: 'ARP queue full: the next hop does not answer',
    OTHERHOST: 'addressed to another host (wrong destination MAC)',
    VXLAN_VNI_NOT_FOUND: 'no VXLAN device for this VNI',
    VXLAN_INVALID_HDR: 'invalid VXLAN header',
    VXLAN_ENTRY_EXISTS: 'VXLAN FDB entry conflict',
    NO_SOCKET: 'nothing listens on that port',
    PKT_TOO_BIG: 'larger than the MTU and not allowed to fragment',
    IP_RPFILTER: 'reverse-path filter: the source would not be routed back this way',
    TC_INGRESS: 'a tc ingress filter dropped it',
    TC_EGRESS: 'a tc egress filter dropped it',
    IP_CSUM: 'bad IPv4 checksum',
    IP_INHDR: 'bad IPv4 header',
    TTL_EXPIRED: 'TTL expired',
    BRIDGE_INGRESS_STP_STATE: 'bridge port not forwarding (STP)',
    DEV_READY: 'device down',
    FULL_RING: 'queue full',
    XFRM_POLICY: 'IPsec policy',
    UNHANDLED_PROTO: 'no handler for this protocol',
  };
  return words[reason] ?? reason.toLowerCase().replace(/_/g, ' ');
}

/** What a deciding rule means, when its chain is one whose owner we know. */
export function explainRule(v: { table: string; chain: string; rule: string }): string | undefined {
  const port = (c: string) => c.replace(/^neutron-linuxbri-[sio]/, '');
  if (v.chain.startsWith('neutron-linuxbri-s'))
    return `Neutron port security (anti-spoofing) of port ${port(v.chain)}…: the source is not an address of that port (an allowed-address-pair would admit it)`;
  if (v.chain.startsWith('neutron-linuxbri-i'))
    return `Neutron security group, ingress to port ${port(v.chain)}…`;
  if (v.chain.startsWith('neutron-linuxbri-o'))
    return `Neutron security group, egress from port ${port(v.chain)}…`;
  if (v.table.endsWith('weft-svc') && v.chain === 'reject-chain')
    return 'kube-proxy: the service has no endpoints';
  if (v.table.endsWith('weft-svc') && v.chain === 'cluster-ips-check')
    return 'kube-proxy: no such port on this ClusterIP';
  if (v.table === 'ip weft' && v.chain === 'input')
    return "weft: VXLAN from an address that is not one of this node's peers";
  return undefined;
}

interface Located {
  raw: RawHop;
  ns: WatchedNs;
  device: string;
  deviceKind: string;
  mtu?: number;
}

const addr = (ip: string, port?: number) => (port !== undefined ? `${ip}:${port}` : ip);

/** The rewrites between two sightings in one namespace: destination first, then source (a NodePort does both). */
function natBetween(
  prev: Header,
  cur: Header,
  dir: 'request' | 'reply',
  nameOf: (ip: string) => string | undefined,
): Nat[] {
  const out: Nat[] = [];
  const dst = { from: addr(prev.dst, prev.dport), to: addr(cur.dst, cur.dport) };
  const src = { from: addr(prev.src, prev.sport), to: addr(cur.src, cur.sport) };
  const ep = nameOf(cur.dst);
  if (dir === 'request') {
    if (dst.from !== dst.to) out.push({ kind: 'DNAT', ...dst, ...(ep && { endpoint: ep }) });
    if (src.from !== src.to) out.push({ kind: 'SNAT', ...src });
  } else {
    if (src.from !== src.to) out.push({ kind: 'un-DNAT', ...src });
    if (dst.from !== dst.to) out.push({ kind: 'un-SNAT', ...dst });
  }
  return out;
}

/** Sightings in time order, one attempt only (a TCP retransmission starts the journey over). */
function clean(input: AssembleInput): Located[] {
  const byCookie = new Map(input.namespaces.map((n) => [n.cookie, n]));
  const seen = new Set<string>();
  const sorted = [...input.raw].sort((a, b) => a.ts - b.ts);
  const out: Located[] = [];
  let originSends = 0;
  let replyAtOrigin = false;
  for (const r of sorted) {
    const ns = byCookie.get(r.netns);
    if (!ns) continue; // a namespace we did not watch (a drop elsewhere on the machine)
    const key = `${r.ts}/${r.netns}/${r.ifindex}/${r.kind}`;
    if (seen.has(key)) continue;
    seen.add(key);
    if (r.kind === 'egress' && r.dir === 'request' && ns.name === input.originNetns && r.layers.length === 1)
      if (++originSends > 1) break; // retransmission
    // The prober's raw ICMP socket got its copy; the kernel's own echo handling then frees the reply.
    if (r.kind === 'drop' && r.dir === 'reply' && replyAtOrigin && ns.name === input.originNetns) continue;
    if (r.kind === 'ingress' && r.dir === 'reply' && ns.name === input.originNetns) replyAtOrigin = true;
    const dev = ns.devices.find((d) => d.ifindex === r.ifindex);
    out.push({
      raw: r,
      ns,
      device: dev?.ifname ?? (r.ifindex ? `if${r.ifindex}` : '-'),
      deviceKind: dev?.kind ?? '-',
      ...(dev && { mtu: dev.mtu }),
    });
  }
  return out;
}

function outerHeaders(layers: RawLayer[], nodeIps: Set<string>): OuterHeader[] {
  return layers.slice(0, -1).map((l) => ({
    src: l.src,
    dst: l.dst,
    udpPort: l.dport,
    kind: l.encap === 'udp' ? 'udp' : 'vxlan',
    ...(l.encap === 'vxlan' && { vni: l.vni }),
    owner: nodeIps.has(l.src) || nodeIps.has(l.dst) ? 'weft' : 'neutron',
  }));
}

export function assembleHops(input: AssembleInput): Hop[] {
  const located = clean(input);
  const hops: Hop[] = [];
  const lastByDir: Partial<Record<'request' | 'reply', Hop>> = {};
  const t0 = located.find((l) => l.raw.dir === 'request')?.raw.ts ?? located[0]?.raw.ts ?? 0;
  for (const l of located) {
    const r = l.raw;
    const inner = header(r.layers[r.layers.length - 1]!);
    const prev = lastByDir[r.dir];
    let event: HopEvent;
    let nats: Nat[] = [];
    if (r.kind === 'drop') event = 'dropped';
    else if (!prev) event = 'sent';
    else {
      const layersBefore = prev.outer.length;
      const layersNow = r.layers.length - 1;
      if (prev.netns === l.ns.name) nats = natBetween(prev.inner, inner, r.dir, input.nameOf);
      if (layersNow > layersBefore) event = 'encapsulated';
      // Fewer layers in the same namespace: decapsulated here (a VXLAN device's ingress). In the next
      // namespace: decapsulated on the way, by what sent it there (the BPF fast path on the
      // underlay), and this sighting is an ordinary arrival — in a pod, the delivery.
      else if (layersNow < layersBefore && prev.netns === l.ns.name) event = 'decapsulated';
      else if (nats.length) event = 'NAT';
      else event = r.kind === 'ingress' ? 'received' : 'forwarded';
    }
    // The reply's first hop leaves the target: the target "sent" it.
    if (r.dir === 'reply' && !prev && r.kind === 'egress') event = 'sent';
    const hop: Hop = {
      seq: hops.length + 1,
      direction: r.dir,
      host: l.ns.host,
      netns: l.ns.name,
      role: l.ns.role,
      device: l.device,
      deviceKind: l.deviceKind,
      hook: r.kind,
      event,
      inner,
      outer: outerHeaders(r.layers, input.nodeIps),
      ...(nats[0] && { nat: nats[0] }),
      ...(nats[1] && { alsoNat: nats[1] }),
      ...(l.mtu !== undefined && { mtu: l.mtu }),
      tNs: r.ts - t0,
      dtNs: hops.length ? r.ts - t0 - hops[hops.length - 1]!.tNs : 0,
    };
    if (r.kind === 'drop')
      hop.drop = {
        reason: r.reason ?? 'unknown',
        location: r.location ?? '',
        explanation: explainDrop(r.reason ?? ''),
      };
    hops.push(hop);
    lastByDir[r.dir] = hop;
  }
  markDelivered(hops, input.originNetns);
  attachNetfilter(hops, input.nft);
  return hops;
}

/** The request's last sighting where the reply starts, and the reply's last sighting at the origin. */
function markDelivered(hops: Hop[], originNetns: string): void {
  const firstReply = hops.find((h) => h.direction === 'reply');
  if (firstReply) {
    // the request's last sighting before the reply starts, if it went into a namespace there
    const req = hops.filter((h) => h.direction === 'request' && h.tNs <= firstReply.tNs && h.hook !== 'drop');
    const last = req[req.length - 1];
    if (last && last.hook === 'ingress' && last.event !== 'decapsulated') last.event = 'delivered';
  }
  const replies = hops.filter(
    (h) => h.direction === 'reply' && h.netns === originNetns && h.hook === 'ingress',
  );
  const lastReply = replies[replies.length - 1];
  if (lastReply && lastReply.event !== 'decapsulated') lastReply.event = 'delivered';
}

/**
 * Gives each netfilter passage to the hops of the namespace visit it belongs to: the visit whose
 * probe header (any layer) has the packet's addresses, in the same direction order.
 */
function attachNetfilter(hops: Hop[], nft: NftPassage[]): void {
  const used = new Set<number>();
  for (const p of nft) {
    if (p.verdicts.length === 0) continue;
    const facts = p.packets;
    const match = (h: Hop) =>
      facts.some((f) => {
        const layers = [h.inner, ...h.outer.map((o) => ({ src: o.src, dst: o.dst }))];
        return layers.some((x) => x.src === f.saddr && x.dst === f.daddr);
      });
    // a visit = consecutive hops in that namespace; attach to its last hop (egress or drop)
    const candidates = hops.filter((h) => h.netns === p.netns && match(h));
    if (candidates.length === 0) continue;
    const first = candidates.find((h) => !used.has(h.seq)) ?? candidates[0]!;
    let target = first;
    for (const h of hops.slice(first.seq)) {
      if (h.netns !== p.netns || h.direction !== first.direction) break;
      target = h;
    }
    for (const h of hops)
      if (h.netns === p.netns && h.direction === first.direction && h.seq >= first.seq && h.seq <= target.seq)
        used.add(h.seq);
    const have = new Set((target.netfilter ?? []).map((v) => JSON.stringify(v)));
    for (const v of p.verdicts) {
      const k = JSON.stringify(v);
      if (have.has(k)) continue; // the same rule met again (br_netfilter runs the inet hooks twice)
      have.add(k);
      (target.netfilter ??= []).push(v);
    }
  }
}

const SEGMENT_OF: Record<Role, string> = {
  pod: 'pod',
  node: 'node',
  underlay: 'underlay',
  neutron: 'neutron',
  external: 'external',
};

export function summarize(
  hops: Hop[],
  input: { outcome: ProbeOutcome; originNetns: string; targetName: string },
): Omit<TraceSummary, 'dataPath'> {
  const rep = hops.filter((h) => h.direction === 'reply');
  const drop = hops.find((h) => h.event === 'dropped');
  const delivered = rep.find((h) => h.event === 'delivered' && h.netns === input.originNetns);
  const firstReply = rep[0];
  // time per segment: an interval belongs to where the packet was at its start, except that the
  // target's turn-around (request delivered → reply sent) is the responder's own time
  const seg = new Map<string, number>();
  const residence = new Map<string, { requestNs: number; replyNs: number }>();
  for (let i = 1; i < hops.length; i++) {
    const a = hops[i - 1]!;
    const b = hops[i]!;
    const d = b.tNs - a.tNs;
    const name = a.direction === 'request' && b.direction === 'reply' ? 'responder' : SEGMENT_OF[a.role];
    seg.set(name, (seg.get(name) ?? 0) + d);
    if (a.host === b.host && a.direction === b.direction) {
      const r = residence.get(a.host) ?? { requestNs: 0, replyNs: 0 };
      if (a.direction === 'request') r.requestNs += d;
      else r.replyNs += d;
      residence.set(a.host, r);
    }
  }
  const segments: Segment[] = [...seg.entries()].map(([segment, ns]) => ({ segment, ns }));
  const overhead = (h: Hop) => h.outer.reduce((n, o) => n + (o.kind === 'vxlan' ? 50 : 28), 0);
  const mtus = hops
    .filter((h) => h.mtu !== undefined && h.hook !== 'drop')
    .map((h) => ({ h, inner: h.mtu! - overhead(h) }));
  const min = mtus.reduce<{ h: Hop; inner: number } | undefined>(
    (m, x) => (!m || x.inner < m.inner ? x : m),
    undefined,
  );
  const mtuNote = min
    ? `${min.inner} bytes for the probe's packet, set by ${min.h.device} in ${min.h.netns} (MTU ${min.h.mtu}${overhead(min.h) ? ` less ${overhead(min.h)} of encapsulation` : ''})`
    : 'unknown';
  let verdict: TraceSummary['verdict'];
  let why: string;
  if (delivered && firstReply) {
    verdict = 'delivered';
    const how =
      input.outcome === 'refused'
        ? `refused (${firstReply.inner.proto === 'tcp' ? 'TCP RST' : 'ICMP unreachable'} from ${firstReply.inner.src})`
        : `answered by ${input.targetName}`;
    why = `the probe reached its target and the reply came back: ${how}`;
  } else if (drop) {
    verdict = 'dropped';
    const rule = drop.netfilter?.find((v) => v.verdict === 'drop' || /\breject\b/.test(v.rule));
    const meaning = rule && explainRule(rule);
    why = `${drop.direction} dropped in ${drop.netns} (${drop.host})${drop.device !== '-' ? ` at ${drop.device}` : ''}: ${drop.drop!.reason} — ${drop.drop!.explanation}${rule ? `; rule "${rule.rule}" in ${rule.table} ${rule.chain}` : ''}${meaning ? `: ${meaning}` : ''}`;
  } else {
    verdict = 'lost';
    const last = hops[hops.length - 1];
    why = last
      ? `no reply and no drop reported: last seen ${last.direction === 'request' ? 'going' : 'coming back'} ${last.hook === 'egress' ? 'out of' : 'into'} ${last.device} in ${last.netns}; the probe ${input.outcome === 'timeout' ? 'timed out' : `ended: ${input.outcome}`}`
      : `the probe was never seen on a watched device (${input.outcome})`;
  }
  return {
    verdict,
    why,
    ...(delivered && { rttNs: delivered.tNs }),
    segments,
    residence: [...residence.entries()].map(([host, r]) => ({ host, ...r })),
    ...(min && { pathMtu: min.inner }),
    mtuNote,
    outcome: input.outcome,
  };
}
