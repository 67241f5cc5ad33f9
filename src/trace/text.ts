import { formatTable } from '../util/table.js';
import type { Header, Hop, OuterHeader, TraceResult } from './types.js';

/** The terminal form of a trace: one line per hop, its NAT/netfilter/drop notes under it, a summary. */

export const us = (ns: number): string => (ns / 1000).toFixed(1);

export function headerText(h: Header): string {
  const ports = h.icmp
    ? /^echo/.test(h.icmp.type)
      ? `${h.icmp.type} id ${h.icmp.id} seq ${h.icmp.seq}`
      : h.icmp.type
    : `${h.sport ?? ''} > ${h.dport ?? ''}${h.tcpFlags ? ` [${h.tcpFlags}]` : ''}`;
  return `${h.src} > ${h.dst} ${h.proto} ${ports} len ${h.len} ttl ${h.ttl}`;
}

export function outerText(o: OuterHeader[]): string {
  return o
    .map(
      (x) =>
        `${x.src} > ${x.dst} udp ${x.udpPort}${x.vni !== undefined ? ` vni ${x.vni}` : ''}${x.owner ? ` (${x.owner})` : ''}`,
    )
    .join(' | ');
}

export function notes(h: Hop): string[] {
  const out: string[] = [];
  for (const n of [h.nat, h.alsoNat])
    if (n) out.push(`${n.kind} ${n.from} → ${n.to}${n.endpoint ? ` (endpoint ${n.endpoint})` : ''}`);
  for (const v of h.netfilter ?? []) out.push(`netfilter ${v.table} ${v.chain}: ${v.rule} → ${v.verdict}`);
  if (h.drop) out.push(`DROPPED: ${h.drop.reason} (${h.drop.explanation}) at ${h.drop.location}`);
  return out;
}

export function traceText(t: TraceResult): string {
  const rows: string[][] = [
    ['#', 'DIR', 'HOST', 'NETNS', 'DEVICE', 'HOOK', 'EVENT', 'PROBE HEADER', 'OUTER', 'MTU', 'T µs', '+µs'],
  ];
  const under: Map<number, string[]> = new Map();
  for (const h of t.hops) {
    rows.push([
      String(h.seq),
      h.direction === 'request' ? 'req' : 'rep',
      h.host,
      h.netns,
      h.device,
      h.hook,
      h.event,
      headerText(h.inner),
      outerText(h.outer) || '-',
      h.mtu !== undefined ? String(h.mtu) : '-',
      us(h.tNs),
      us(h.dtNs),
    ]);
    under.set(h.seq, notes(h));
  }
  // notes go under their hop, indented, outside the table's columns
  const table = formatTable(rows).trimEnd().split('\n');
  const lines = [table[0]!];
  t.hops.forEach((h, i) => {
    lines.push(table[i + 1]!);
    for (const n of under.get(h.seq) ?? []) lines.push(`      ↳ ${n}`);
  });
  const s = t.summary;
  const target = `${t.to.name}${t.to.name !== t.to.ip ? ` (${t.to.ip}${t.to.port !== undefined ? `:${t.to.port}` : ''})` : t.to.port !== undefined ? `:${t.to.port}` : ''}`;
  const out = [
    `trace ${t.from.name} (${t.from.ip}) → ${target} ${t.proto}, lab ${t.lab}`,
    `times in µs since the probe left, and since the previous hop; ${t.clock}`,
    '',
    ...lines,
    '',
    `verdict:   ${s.verdict.toUpperCase()} — ${s.why}`,
    ...(s.rttNs !== undefined ? [`rtt:       ${us(s.rttNs)} µs`] : []),
    `segments:  ${s.segments.map((x) => `${x.segment} ${us(x.ns)} µs`).join(', ') || '-'}`,
    `per host:  ${s.residence.map((r) => `${r.host} ${us(r.requestNs)}+${us(r.replyNs)} µs`).join(', ') || '-'} (request+reply residence)`,
    `path MTU:  ${s.mtuNote}`,
    ...s.dataPath.map(
      (d) => `data path: ${d.node} → ${d.toward}: ${d.path}${d.reason ? ` (${d.reason})` : ''}`,
    ),
    `trace:     set-up ${t.timings.setupMs} ms, probe ${t.timings.probeMs} ms, tear-down ${t.timings.teardownMs} ms; nothing stays attached`,
    ...(t.netfilterTraced
      ? [
          'note:      netfilter rules were traced, which adds time to hops in nodes with rules (--no-netfilter for pure timings)',
        ]
      : []),
    ...t.warnings.map((w) => `warning:   ${w}`),
  ];
  return out.join('\n') + '\n';
}
