import type { BenchResult, PathResult, Stat } from './result.js';
import { shortLabel } from './text.js';

/**
 * The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched) that a
 * browser opens offline. Charts: throughput and ratio to native per path, round-trip percentiles,
 * CPU per Gbit/s; then each path's hops with their MTUs, the environment and the method.
 */

export const esc = (s: string): string =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

export interface Series {
  name: string;
  color: string;
  values: (number | undefined)[];
  /** min–max of the repetitions, drawn as a whisker. */
  spreads?: ([number, number] | undefined)[];
}

export interface ChartSpec {
  id: string;
  title: string;
  unit: string;
  categories: string[];
  series: Series[];
  digits: number;
  /** A vertical reference line (1.0 on the ratio chart). */
  reference?: { at: number; label: string };
}

/** Rounds a maximum up to a step that divides into five readable ticks (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8 × 10^k). */
function niceMax(x: number): number {
  if (!(x > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(x));
  return ([1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10].find((m) => m * p >= x) ?? 10) * p;
}

/** A horizontal grouped bar chart: one group per path, one bar per series. */
export function barChart(c: ChartSpec): string {
  const labelW = 210;
  const plotW = 560;
  const barH = 14;
  const gap = 3;
  const groupGap = 14;
  const top = 34;
  const groupH = c.series.length * (barH + gap) - gap;
  const height = top + c.categories.length * (groupH + groupGap) + 24;
  const all = c.series.flatMap((s) => [
    ...s.values.filter((v): v is number => v !== undefined),
    ...(s.spreads ?? []).flatMap((x) => (x ? [x[1]] : [])),
  ]);
  const max = niceMax(Math.max(...all, c.reference?.at ?? 0) * 1.08);
  const x = (v: number) => labelW + (v / max) * plotW;
  const out: string[] = [];
  out.push(
    `<svg class="chart" data-chart="${c.id}" viewBox="0 0 ${labelW + plotW + 150} ${height}" role="img" aria-label="${esc(c.title)}">`,
  );
  // Legend.
  c.series.forEach((s, i) => {
    const lx = labelW + i * 150;
    out.push(
      `<rect x="${lx}" y="6" width="12" height="12" fill="${s.color}"/><text x="${lx + 17}" y="16" class="legend">${esc(s.name)}</text>`,
    );
  });
  // Axis and grid.
  for (let k = 0; k <= 5; k++) {
    const v = (max / 5) * k;
    const gx = x(v);
    out.push(
      `<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${height - 20}" class="grid"/>`,
      `<text x="${gx}" y="${height - 6}" class="tick" text-anchor="middle">${+v.toFixed(3)}</text>`,
    );
  }
  out.push(`<text x="${labelW + plotW + 10}" y="${height - 6}" class="tick">${esc(c.unit)}</text>`);
  // Bars.
  c.categories.forEach((cat, gi) => {
    const gy = top + gi * (groupH + groupGap);
    out.push(
      `<text x="${labelW - 8}" y="${gy + groupH / 2 + 4}" class="cat" text-anchor="end">${esc(cat)}</text>`,
    );
    c.series.forEach((s, si) => {
      const v = s.values[gi];
      const y = gy + si * (barH + gap);
      if (v === undefined) {
        out.push(`<text x="${labelW + 4}" y="${y + barH - 3}" class="na">not measured</text>`);
        return;
      }
      const w = Math.max(1, x(v) - labelW);
      out.push(
        `<rect class="bar" data-series="${esc(s.name)}" x="${labelW}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${s.color}"><title>${esc(`${cat}, ${s.name}: ${v.toFixed(c.digits)} ${c.unit}`)}</title></rect>`,
      );
      const sp = s.spreads?.[gi];
      if (sp && sp[1] > sp[0]) {
        const cy = y + barH / 2;
        out.push(
          `<path class="whisker" d="M${x(sp[0]).toFixed(1)} ${cy}H${x(sp[1]).toFixed(1)}M${x(sp[0]).toFixed(1)} ${cy - 4}V${cy + 4}M${x(sp[1]).toFixed(1)} ${cy - 4}V${cy + 4}"/>`,
        );
      }
      const end = Math.max(x(v), sp ? x(sp[1]) : 0);
      out.push(`<text x="${end + 5}" y="${y + barH - 3}" class="val">${v.toFixed(c.digits)}</text>`);
    });
  });
  if (c.reference) {
    const rx = x(c.reference.at);
    out.push(
      `<line x1="${rx}" y1="${top - 6}" x2="${rx}" y2="${height - 20}" class="ref"/>`,
      `<text x="${rx + 4}" y="${top - 10}" class="tick">${esc(c.reference.label)}</text>`,
    );
  }
  out.push('</svg>');
  return `<figure><figcaption>${esc(c.title)}</figcaption>${out.join('')}</figure>`;
}

const COLORS = {
  one: '#2f6db5',
  four: '#8fb8e8',
  p50: '#2a8c5a',
  p90: '#e0a526',
  p99: '#c8452f',
  cpu: '#7a4fb0',
};
const spreadOf = (s: Stat | undefined): [number, number] | undefined => (s ? [s.min, s.max] : undefined);

function charts(paths: PathResult[]): string {
  const cats = paths.map(shortLabel);
  return [
    barChart({
      id: 'throughput',
      title: 'TCP throughput per path (median; whiskers: min–max of the repetitions)',
      unit: 'Gbit/s',
      categories: cats,
      digits: 2,
      series: [
        {
          name: '1 stream',
          color: COLORS.one,
          values: paths.map((p) => p.tcp1?.gbps.median),
          spreads: paths.map((p) => spreadOf(p.tcp1?.gbps)),
        },
        {
          name: '4 streams',
          color: COLORS.four,
          values: paths.map((p) => p.tcp4?.gbps.median),
          spreads: paths.map((p) => spreadOf(p.tcp4?.gbps)),
        },
      ],
    }),
    barChart({
      id: 'ratio',
      title: 'Throughput as a ratio of native (node to node, same run)',
      unit: '× native',
      categories: cats,
      digits: 2,
      reference: { at: 1, label: 'native' },
      series: [
        { name: '1 stream', color: COLORS.one, values: paths.map((p) => p.ratios.tcp1 ?? undefined) },
        { name: '4 streams', color: COLORS.four, values: paths.map((p) => p.ratios.tcp4 ?? undefined) },
      ],
    }),
    barChart({
      id: 'latency',
      title: 'Request/response round trip (sockperf ping-pong, TCP, full RTT): percentiles',
      unit: 'µs',
      categories: cats,
      digits: 1,
      series: [
        { name: 'p50', color: COLORS.p50, values: paths.map((p) => p.latency?.p50Us.median) },
        { name: 'p90', color: COLORS.p90, values: paths.map((p) => p.latency?.p90Us.median) },
        { name: 'p99', color: COLORS.p99, values: paths.map((p) => p.latency?.p99Us.median) },
      ],
    }),
    barChart({
      id: 'cpu',
      title: 'CPU cost: cores of the machine busy per Gbit/s (1 stream)',
      unit: 'cores per Gbit/s',
      categories: cats,
      digits: 3,
      series: [
        {
          name: 'cores per Gbit/s',
          color: COLORS.cpu,
          values: paths.map((p) => p.tcp1?.cpuCoresPerGbps.median),
          spreads: paths.map((p) => spreadOf(p.tcp1?.cpuCoresPerGbps)),
        },
      ],
    }),
  ].join('\n');
}

const n = (x: number | undefined | null, d = 2) => (x === undefined || x === null ? '–' : x.toFixed(d));

function summaryTable(paths: PathResult[]): string {
  const head = [
    'Path',
    'Gbit/s, 1 stream',
    'ratio',
    'Gbit/s, 4 streams',
    'ratio',
    'retransmits (1 / 4)',
    'RTT p50 / p90 / p99 µs',
    'RTT ratio (p50)',
    'CPU cores per Gbit/s',
    'status',
  ];
  const rows = paths.map((p) => {
    const l = p.latency;
    return [
      esc(p.label),
      n(p.tcp1?.gbps.median),
      n(p.ratios.tcp1),
      n(p.tcp4?.gbps.median),
      n(p.ratios.tcp4),
      `${n(p.tcp1?.retransmits.median, 0)} / ${n(p.tcp4?.retransmits.median, 0)}`,
      l ? `${n(l.p50Us.median, 1)} / ${n(l.p90Us.median, 1)} / ${n(l.p99Us.median, 1)}` : '–',
      n(p.ratios.latencyP50),
      n(p.tcp1?.cpuCoresPerGbps.median, 3),
      p.status === 'ok' ? 'ok' : `<span class="bad">${esc(p.status)}: ${esc(p.reason ?? '')}</span>`,
    ];
  });
  return `<table class="summary"><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map(
      (r) => `<tr>${r.map((c, i) => `<td${i > 0 && i < 9 ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`,
    )
    .join('')}</tbody></table>`;
}

function hopsSection(paths: PathResult[]): string {
  return paths
    .map(
      (p) =>
        `<div class="path"><div class="pname">${esc(shortLabel(p))}</div><div class="hops">${
          p.hops.length === 0
            ? '<span class="na">not measured</span>'
            : p.hops
                .map(
                  (h) =>
                    `<span class="hop ${h.kind}" title="${esc(`${h.netns} ${h.device} (${h.kind})`)}">${esc(h.host)}/${esc(h.device)}<b>${h.mtu}</b></span>`,
                )
                .join('<span class="arrow">→</span>')
        }</div></div>`,
    )
    .join('');
}

function kv(rows: [string, string][]): string {
  return `<table class="kv">${rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`).join('')}</table>`;
}

/** The reports' style sheet (the demo's report shares it). */
export const REPORT_CSS = `body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1100px;padding:0 16px;color:#1d2228}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #dde2e8;padding-bottom:4px}
.sub{color:#5b6570}.warn{background:#fff4d6;border:1px solid #e8c96a;padding:6px 10px;border-radius:4px}
figure{margin:14px 0 22px}figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block;background:#fbfcfd;border:1px solid #e6eaef;border-radius:4px}
svg .grid{stroke:#e3e7ec}svg .ref{stroke:#1d2228;stroke-dasharray:4 3}svg .whisker{stroke:#1d2228;stroke-width:1.2;fill:none}
svg text{font:12px system-ui,sans-serif;fill:#1d2228}svg .tick{fill:#6b7580;font-size:11px}svg .na{fill:#a0a8b0;font-style:italic}
svg .val{font-size:11px}
table{border-collapse:collapse;margin:6px 0}th,td{padding:4px 8px;border-bottom:1px solid #e6eaef;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}table.small{font-size:12px}table.kv th{color:#5b6570;font-weight:500}
.bad{color:#b3261e}.path{margin:6px 0}.pname{font-weight:600}.hops{display:flex;flex-wrap:wrap;align-items:center;gap:2px}
.hop{border:1px solid #cfd6de;border-radius:4px;padding:1px 6px;font-size:12px;background:#fff}.hop b{margin-left:6px}
.hop.overlay{background:#fdeee9}.hop.underlay{background:#eef3fb}.hop.pod{background:#eef8f1}.arrow{color:#8a939c;padding:0 2px}
`;

export function renderHtml(res: BenchResult): string {
  const e = res.environment;
  const s = res.settings;
  const offloadNames = [...new Set(Object.values(e.offloads).flatMap((o) => Object.keys(o)))];
  const offloads = `<table class="summary small"><thead><tr><th>interface</th>${offloadNames
    .map((k) => `<th>${esc(k)}</th>`)
    .join('')}</tr></thead><tbody>${Object.entries(e.offloads)
    .map(
      ([dev, o]) =>
        `<tr><td>${esc(dev)}</td>${offloadNames.map((k) => `<td>${esc(o[k] ?? '–')}</td>`).join('')}</tr>`,
    )
    .join('')}</tbody></table>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>weft bench: ${esc(res.lab.name)} (${esc(res.startedAt)})</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
${REPORT_CSS}</style></head><body>
<h1>weft bench — lab ${esc(res.lab.name)}</h1>
<div class="sub">${esc(res.lab.underlay)} underlay, ${res.lab.nodes} nodes · ${esc(res.startedAt)} → ${esc(res.finishedAt)} · weft ${esc(res.tool.version)} · schema ${esc(res.schema)}</div>
${s.quick ? '<p class="warn">Quick run (about 1 s per measurement, one repetition): a smoke test, not figures to quote.</p>' : ''}
<h2>Summary</h2>
<p>Every ratio is against the native path (node to node on the underlay) measured in this run, on the same two nodes. ${s.repetitions} repetition(s) of ${s.seconds} s after a ${s.warmupSeconds} s warm-up; medians shown.</p>
${summaryTable(res.paths)}
<h2>Charts</h2>
${charts(res.paths)}
<h2>Hops and MTU</h2>
<p>Each interface a packet crosses from sender to receiver, with its MTU, as the kernel's route lookups give it.</p>
${hopsSection(res.paths)}
<h2>Method</h2>
${kv([
  ['throughput', s.throughputTool],
  ['latency', s.latencyTool],
  ['RTT convention', s.rttConvention],
  ['CPU', s.cpuMethod],
  ['streams', s.streams.join(', ')],
])}
<h2>Environment</h2>
${kv([
  ['CPU', `${e.cpus} × ${e.cpuModel}`],
  ['memory', `${(e.memoryBytes / 2 ** 30).toFixed(1)} GiB`],
  ['kernel', e.kernel],
  ['CPU governor', e.cpuGovernor],
  ['Node.js', e.node],
  ['iperf3', e.iperf3],
  ['sockperf', e.sockperf],
  ['underlay MTU', String(e.underlayMtu)],
])}
<h3>Offloads (ethtool -k) of the interfaces on the measured paths</h3>
${offloads}
</body></html>
`;
}
