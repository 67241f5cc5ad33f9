import type { NetfilterVerdict, Proto } from './types.js';

/**
 * nftables tracing for one probe. In every namespace whose rules matter, a table of the trace's own
 * (`ip weft-trace-<pid>`, created with `flags owner` by the loader, so it vanishes with it) sets
 * `meta nftrace` on the probe in prerouting and output, before conntrack; `nft monitor trace` then
 * reports every rule the probe meets in any table of that namespace. The probe is recognised by its
 * payload nonce (ICMP, UDP) or its source port (TCP), also inside one VXLAN layer (what a Neutron
 * hypervisor's bridge sees when weft encapsulates).
 */
export const TRACE_TABLE_PREFIX = 'weft-trace-';
const CANARY_MARK = '0x00002ae7';
const VXLAN_PORTS = '{ 8472, 4789 }';
/** Outer UDP + VXLAN + Ethernet + IPv4 between an encapsulating UDP header and the probe's transport header. */
const VXLAN_INNER_TH = 8 + 8 + 14 + 20;

export function traceTableName(pid: number): string {
  return `${TRACE_TABLE_PREFIX}${pid}`;
}

export function traceTable(name: string, proto: Proto, nonce: Buffer, sport: number): string {
  const matches: string[] = [];
  if (proto === 'tcp') {
    matches.push(`tcp sport ${sport}`, `tcp dport ${sport}`);
    matches.push(`udp dport ${VXLAN_PORTS} @th,${VXLAN_INNER_TH * 8},16 ${sport}`);
    matches.push(`udp dport ${VXLAN_PORTS} @th,${(VXLAN_INNER_TH + 2) * 8},16 ${sport}`);
  } else {
    // the nonce's first 8 bytes follow the 4-byte magic after the 8-byte ICMP or UDP header
    const hex = `0x${nonce.subarray(0, 8).toString('hex')}`;
    matches.push(`meta l4proto ${proto} @th,${12 * 8},64 ${hex}`);
    matches.push(`udp dport ${VXLAN_PORTS} @th,${(VXLAN_INNER_TH + 12) * 8},64 ${hex}`);
  }
  const rules = (indent: string) => matches.map((m) => `${indent}${m} meta nftrace set 1`).join('\n');
  return [
    `table ip ${name} {`,
    '  flags owner',
    '  chain pre {',
    '    type filter hook prerouting priority -500; policy accept;',
    rules('    '),
    '  }',
    '  chain out {',
    '    type filter hook output priority -500; policy accept;',
    // the loader's canary (to 127.0.0.1:9): seen in the monitor's output, it proves the monitor listens
    `    meta mark ${CANARY_MARK} udp dport 9 meta nftrace set 1`,
    rules('    '),
    '  }',
    '}',
    '',
  ].join('\n');
}

/** One `nft monitor trace` line. */
export interface NftTraceLine {
  id: string;
  family: string;
  table: string;
  chain: string;
  kind: 'packet' | 'rule' | 'policy' | 'verdict';
  text: string;
  verdict?: string;
}

const LINE =
  /^trace id (\S+) (\S+) (\S+) (\S+) (packet: (.*)|rule (.*) \(verdict (.*)\)|policy (\S+)|verdict (.*))\s*$/;

export function parseTraceLine(line: string): NftTraceLine | undefined {
  const m = LINE.exec(line.trim());
  if (!m) return undefined;
  const base = { id: m[1]!, family: m[2]!, table: m[3]!, chain: m[4]! };
  if (m[6] !== undefined) return { ...base, kind: 'packet', text: m[6] };
  if (m[7] !== undefined) return { ...base, kind: 'rule', text: m[7], verdict: m[8]! };
  if (m[9] !== undefined) return { ...base, kind: 'policy', text: '', verdict: m[9] };
  return { ...base, kind: 'verdict', text: '', verdict: m[10]! };
}

/** The addresses and ports of a `packet:` line (the outermost IPv4 header nft saw). */
export interface PacketFacts {
  saddr?: string;
  daddr?: string;
  sport?: number;
  dport?: number;
  iif?: string;
  oif?: string;
}

export function packetFacts(text: string): PacketFacts {
  const get = (re: RegExp) => re.exec(text)?.[1];
  const num = (re: RegExp) => {
    const v = get(re);
    return v === undefined ? undefined : Number(v);
  };
  const f: PacketFacts = {};
  const s = get(/ip saddr (\S+)/);
  const d = get(/ip daddr (\S+)/);
  const sp = num(/(?:tcp|udp) sport (\d+)/);
  const dp = num(/(?:tcp|udp) dport (\d+)/);
  const iif = get(/iif "([^"]+)"/);
  const oif = get(/oif "([^"]+)"/);
  if (s) f.saddr = s;
  if (d) f.daddr = d;
  if (sp !== undefined) f.sport = sp;
  if (dp !== undefined) f.dport = dp;
  if (iif) f.iif = iif;
  if (oif) f.oif = oif;
  return f;
}

/** One packet's passage through one namespace's netfilter: where it came in and the rules that decided. */
export interface NftPassage {
  netns: string;
  id: string;
  packets: PacketFacts[];
  verdicts: NetfilterVerdict[];
  /** Every rule it met, our own trace table's excepted (for --json). */
  all: NetfilterVerdict[];
}

/** Groups a namespace's trace lines by packet; keeps the rules that decided something. */
export function passages(netns: string, lines: string[]): NftPassage[] {
  const byId = new Map<string, NftPassage>();
  for (const raw of lines) {
    const l = parseTraceLine(raw);
    if (!l) continue;
    let p = byId.get(l.id);
    if (!p) byId.set(l.id, (p = { netns, id: l.id, packets: [], verdicts: [], all: [] }));
    if (l.kind === 'packet') {
      p.packets.push(packetFacts(l.text));
      continue;
    }
    if (l.table.startsWith(TRACE_TABLE_PREFIX)) continue;
    const v: NetfilterVerdict = {
      table: `${l.family} ${l.table}`,
      chain: l.chain,
      rule: l.kind === 'rule' ? l.text.replace(/ ?counter packets \d+ bytes \d+/, '').trim() : `(${l.kind})`,
      verdict: l.verdict ?? '',
    };
    p.all.push(v);
    // what decided: a final verdict, a NAT or load-balancing step, a dispatch into another chain
    const decided =
      l.kind === 'rule'
        ? /^(accept|drop|queue|goto)/.test(v.verdict) ||
          /\b(dnat|snat|masquerade|redirect|reject|numgen)\b/.test(v.rule)
        : v.verdict === 'drop';
    if (decided) p.verdicts.push(v);
  }
  return [...byId.values()];
}
