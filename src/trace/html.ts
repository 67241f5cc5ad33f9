import { headerText, notes, outerText, us } from './text.js';
import type { Hop, TraceResult } from './types.js';

/**
 * A trace as a self-contained HTML page (no script, font or style from anywhere else: it opens
 * offline): a sequence diagram with one lane per host/namespace and one arrow per hop, request in
 * blue, reply in green, a drop in red; hovering a hop shows its headers, NAT and netfilter verdicts.
 * Below it, the hop table and the summary.
 */
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function traceHtml(t: TraceResult): string {
  const lanes: string[] = [];
  for (const h of t.hops) if (!lanes.includes(h.netns)) lanes.push(h.netns);
  const hostOf = new Map(t.hops.map((h) => [h.netns, h.host]));
  const laneW = 150;
  const rowH = 30;
  const top = 70;
  const width = Math.max(600, lanes.length * laneW + 40);
  const height = top + (t.hops.length + 1) * rowH + 20;
  const x = (ns: string) => 20 + lanes.indexOf(ns) * laneW + laneW / 2;
  const y = (i: number) => top + (i + 1) * rowH;
  const color = (h: Hop) =>
    h.event === 'dropped' ? '#d11' : h.direction === 'request' ? '#1f5fbf' : '#1a8a3a';
  const tip = (h: Hop) =>
    [
      `#${h.seq} ${h.direction} ${h.event} — ${h.device} (${h.deviceKind}) ${h.hook} in ${h.netns} on ${h.host}`,
      `probe: ${headerText(h.inner)}`,
      ...(h.outer.length ? [`outer: ${outerText(h.outer)}`] : []),
      ...(h.mtu !== undefined ? [`MTU ${h.mtu}`] : []),
      `t = ${us(h.tNs)} µs (+${us(h.dtNs)} µs)`,
      ...notes(h),
    ].join('\n');
  const svg: string[] = [];
  lanes.forEach((ns, i) => {
    const cx = 20 + i * laneW + laneW / 2;
    svg.push(
      `<line x1="${cx}" y1="${top - 10}" x2="${cx}" y2="${height - 10}" class="lane"/>`,
      `<text x="${cx}" y="24" class="host">${esc(hostOf.get(ns) ?? '')}</text>`,
      `<text x="${cx}" y="42" class="ns">${esc(ns)}</text>`,
    );
  });
  t.hops.forEach((h, i) => {
    const prev = t.hops[i - 1];
    if (prev) {
      const x1 = x(prev.netns);
      const x2 = x(h.netns);
      svg.push(
        `<line x1="${x1}" y1="${y(i - 1)}" x2="${x2}" y2="${y(i)}" stroke="${color(h)}" class="hop" marker-end="url(#arrow-${h.event === 'dropped' ? 'drop' : h.direction})"/>`,
      );
    }
    const label = `${h.device} ${h.event}${h.nat ? ` ${h.nat.kind}` : ''}${h.alsoNat ? `+${h.alsoNat.kind}` : ''}${h.drop ? ` ${h.drop.reason}` : ''}`;
    svg.push(
      `<g class="pt"><title>${esc(tip(h))}</title>`,
      `<circle cx="${x(h.netns)}" cy="${y(i)}" r="${h.event === 'dropped' ? 7 : 5}" fill="${color(h)}"/>`,
      `<text x="${x(h.netns) + 9}" y="${y(i) - 6}" class="lbl" fill="${color(h)}">${esc(label)}</text>`,
      `<text x="6" y="${y(i) + 4}" class="t">${us(h.tNs)}</text></g>`,
    );
  });
  const rows = t.hops
    .map(
      (h) =>
        `<tr class="${h.event === 'dropped' ? 'drop' : h.direction}"><td>${h.seq}</td><td>${h.direction}</td><td>${esc(h.host)}</td><td>${esc(h.netns)}</td><td>${esc(h.device)}</td><td>${h.event}</td><td>${esc(headerText(h.inner))}</td><td>${esc(outerText(h.outer))}</td><td>${h.mtu ?? ''}</td><td>${us(h.tNs)}</td><td>${us(h.dtNs)}</td><td>${esc(notes(h).join('; '))}</td></tr>`,
    )
    .join('\n');
  const s = t.summary;
  const title = `weft trace ${t.from.name} → ${t.to.name} (${t.proto})`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:18px} .v-delivered{color:#1a8a3a} .v-dropped,.v-lost{color:#d11}
svg{background:#fafafa;border:1px solid #ddd}
.lane{stroke:#ccc;stroke-dasharray:4 4} .host{font:bold 12px sans-serif;text-anchor:middle} .ns{font:11px monospace;text-anchor:middle;fill:#555}
.hop{stroke-width:1.6;fill:none} .lbl{font:11px monospace} .t{font:10px monospace;fill:#888} .pt:hover circle{stroke:#000;stroke-width:2}
table{border-collapse:collapse;margin-top:16px;font:12px monospace} td,th{border:1px solid #ddd;padding:2px 6px;text-align:left;vertical-align:top}
tr.drop td{color:#d11;font-weight:bold} tr.reply td{color:#155d2a}
</style></head><body>
<h1>${esc(title)} — <span class="v-${s.verdict}">${s.verdict}</span></h1>
<p>${esc(s.why)}</p>
<p>${s.rttNs !== undefined ? `Round trip <b>${us(s.rttNs)} µs</b>. ` : ''}Segments: ${esc(s.segments.map((x) => `${x.segment} ${us(x.ns)} µs`).join(', '))}. Path MTU: ${esc(s.mtuNote)}.</p>
<p>${esc(s.dataPath.map((d) => `${d.node} → ${d.toward}: ${d.path}${d.reason ? ` (${d.reason})` : ''}`).join(' · '))}</p>
<p><small>${esc(t.clock)}. Times in µs since the probe left. Hover a hop for its headers.</small></p>
<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">
<defs>${(['request', 'reply', 'drop'] as const)
    .map(
      (k) =>
        `<marker id="arrow-${k}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="${k === 'drop' ? '#d11' : k === 'request' ? '#1f5fbf' : '#1a8a3a'}"/></marker>`,
    )
    .join('')}</defs>
${svg.join('\n')}
</svg>
<table><tr><th>#</th><th>dir</th><th>host</th><th>netns</th><th>device</th><th>event</th><th>probe header</th><th>outer</th><th>MTU</th><th>t µs</th><th>+µs</th><th>notes</th></tr>
${rows}
</table>
</body></html>
`;
}
