import { formatTable } from '../util/table.js';
import type { BenchResult, PathResult, Stat } from './result.js';

/**
 * The terminal forms of a result: the talk's table (path, throughput, ratio to native, latency,
 * CPU per Gbit/s) and the difference between two runs.
 */

/** Numbers, ratios and percentages are right-aligned; the first column never is. */
const table = (rows: string[][]): string =>
  formatTable(rows, (c, i) => i > 0 && i < 8 && c !== '-' && /^[-+\d.×%/ ()–]+[a-zµ%]*$/.test(c));

const f = (x: number | undefined, digits = 2): string => (x === undefined ? '-' : x.toFixed(digits));
const spread = (s: Stat | undefined, digits = 2): string =>
  s === undefined
    ? '-'
    : s.values.length > 1
      ? `${f(s.median, digits)} (${f(s.min, digits)}–${f(s.max, digits)})`
      : f(s.median, digits);
const r = (x: number | null): string => (x === null ? '-' : x.toFixed(2));

/** The MTU by kind of hop, sender to receiver, repeats folded: "pod 1450, overlay 1450, underlay 1500". */
export function hopMtus(p: PathResult): string {
  const parts: string[] = [];
  for (const h of p.hops) {
    const part = `${h.kind} ${h.mtu}`;
    if (!parts.includes(part)) parts.push(part);
  }
  return parts.join(', ') || '-';
}

export function shortLabel(p: PathResult): string {
  if (p.kind === 'native') return 'node → node (native)';
  const bpf = p.fastPath === 'bpf' ? '+bpf' : '';
  if (p.kind === 'same-node') return `pod → pod, same node${bpf && ` ${bpf}`}`;
  if (p.kind === 'reference') {
    const what = p.id.split('/')[1] ?? '';
    return what.startsWith('flannel-') ? `Flannel as built, ${what.slice(8)}` : `hand-built ${what}`;
  }
  return `pod → pod, ${p.backend ?? '?'}${bpf}`;
}

export function formatResult(res: BenchResult): string {
  const rows = [
    [
      'PATH',
      'GBIT/S 1',
      'RATIO',
      'GBIT/S 4',
      'RATIO',
      'RETR 1',
      'RTT P50/P90/P99 µs',
      'CPU/GBIT',
      'MTU BY HOP',
    ],
  ];
  for (const p of res.paths) {
    if (p.status !== 'ok' && !p.tcp1) {
      rows.push([shortLabel(p), p.status, '', '', '', '', '', '', p.reason ?? '']);
      continue;
    }
    const l = p.latency;
    rows.push([
      shortLabel(p),
      spread(p.tcp1?.gbps),
      r(p.ratios.tcp1),
      spread(p.tcp4?.gbps),
      r(p.ratios.tcp4),
      f(p.tcp1?.retransmits.median, 0),
      l ? `${f(l.p50Us.median, 0)}/${f(l.p90Us.median, 0)}/${f(l.p99Us.median, 0)}` : '-',
      f(p.tcp1?.cpuCoresPerGbps.median, 3),
      hopMtus(p),
    ]);
  }
  const e = res.environment;
  const st = res.settings;
  return (
    `weft bench: lab ${res.lab.name} (${res.lab.underlay}, ${res.lab.nodes} nodes), ${st.repetitions} repetition(s) × ${st.seconds} s after ${st.warmupSeconds} s warm-up${st.quick ? ' (quick: not figures to quote)' : ''}\n` +
    `machine: ${e.cpus} × ${e.cpuModel}, kernel ${e.kernel}, underlay MTU ${e.underlayMtu}\n\n` +
    table(rows) +
    `\nGbit/s: median (min–max) of the repetitions; ratios against the native path of this run. RTT: full round trip (sockperf --full-rtt).\n` +
    `CPU/GBIT: cores of the whole machine busy per Gbit/s, 1 stream. MTU: every interface from sender to receiver.\n` +
    againstReference(res, '', 'weft against the same path built by hand (1.00 = weft adds nothing)') +
    againstReference(
      res,
      'flannel-',
      "weft against Flannel as built (the same paths with flanneld's masquerade and forward rules)",
    ) +
    againstVxlan(res) +
    res.paths
      .filter((p) => p.status !== 'ok')
      .map((p) => `${shortLabel(p)}: ${p.status}: ${p.reason ?? ''}\n`)
      .join('')
  );
}

/**
 * weft's pod paths (plain and with the fast path) divided by the reference of the same kind, when
 * --reference measured both: `prefix` "" for the bare hand-built paths, "flannel-" for Flannel as built.
 */
function againstReference(res: BenchResult, prefix: '' | 'flannel-', title: string): string {
  const lines = ratioLines(
    res,
    ['', '+bpf'].flatMap((bpf) => [
      [`cross-node/host-gw${bpf}`, `reference/${prefix}routed`],
      [`cross-node/vxlan${bpf}`, `reference/${prefix}vxlan`],
    ]) as [string, string][],
  );
  return lines.length > 0 ? `\n${title}:\n${lines.join('')}` : '';
}

/** The udp data paths (userspace) against the kernel's own tunnel, vxlan, measured in the same run. */
function againstVxlan(res: BenchResult): string {
  const lines = ratioLines(res, [
    ['cross-node/udp', 'cross-node/vxlan'],
    ['cross-node/udp-batch1', 'cross-node/vxlan'],
    ['cross-node/udp', 'cross-node/udp-batch1'],
  ]);
  return lines.length > 0
    ? `\nthe udp data path against the kernel's vxlan (and Flannel's batch=1):\n${lines.join('')}`
    : '';
}

function ratioLines(res: BenchResult, pairs: [string, string][]): string[] {
  const get = (id: string) => res.paths.find((p) => p.id === id);
  return pairs.flatMap(([w, h]) => {
    const [pw, ph] = [get(w), get(h)];
    if (!pw?.tcp1 || !ph?.tcp1) return [];
    const q = (a?: Stat, b?: Stat) => (a && b && b.median > 0 ? (a.median / b.median).toFixed(2) : '-');
    return [
      `${shortLabel(pw)} vs ${shortLabel(ph)}: throughput ×${q(pw.tcp1.gbps, ph.tcp1.gbps)} (1 stream), ×${q(pw.tcp4?.gbps, ph.tcp4?.gbps)} (4 streams); RTT p50 ×${q(pw.latency?.p50Us, ph.latency?.p50Us)}; CPU per Gbit/s ×${q(pw.tcp1.cpuCoresPerGbps, ph.tcp1.cpuCoresPerGbps)}\n`,
    ];
  });
}

// ------------------------------------------------------------------------------------------- compare
const pct = (a: number | undefined, b: number | undefined): string => {
  if (a === undefined || b === undefined) return '-';
  if (a === 0) return b === 0 ? '0%' : 'new';
  const d = ((b - a) / a) * 100;
  return `${d >= 0 ? '+' : ''}${d.toFixed(1)}%`;
};

/** Path by path (matched on id), the medians of run A and run B and B's change against A. */
export function formatComparison(a: BenchResult, b: BenchResult, names: [string, string]): string {
  const ids = [...new Set([...a.paths.map((p) => p.id), ...b.paths.map((p) => p.id)])];
  const rows = [['PATH', 'METRIC', 'A', 'B', 'CHANGE']];
  const metrics: [string, (p: PathResult) => number | undefined, number][] = [
    ['Gbit/s, 1 stream', (p) => p.tcp1?.gbps.median, 2],
    ['Gbit/s, 4 streams', (p) => p.tcp4?.gbps.median, 2],
    ['ratio to native, 1 stream', (p) => p.ratios.tcp1 ?? undefined, 2],
    ['RTT p50 µs', (p) => p.latency?.p50Us.median, 1],
    ['RTT p99 µs', (p) => p.latency?.p99Us.median, 1],
    ['CPU cores per Gbit/s', (p) => p.tcp1?.cpuCoresPerGbps.median, 3],
    ['retransmits, 1 stream', (p) => p.tcp1?.retransmits.median, 0],
  ];
  for (const id of ids) {
    const pa = a.paths.find((p) => p.id === id);
    const pb = b.paths.find((p) => p.id === id);
    const label = shortLabel((pa ?? pb)!);
    if (!pa || !pb) {
      rows.push([label, `only in ${pa ? 'A' : 'B'}`, '', '', '']);
      continue;
    }
    metrics.forEach(([name, get, digits], i) => {
      rows.push([i === 0 ? label : '', name, f(get(pa), digits), f(get(pb), digits), pct(get(pa), get(pb))]);
    });
  }
  const env = (r: BenchResult) =>
    `${r.environment.kernel}, ${r.environment.cpus} × ${r.environment.cpuModel}, ${r.lab.underlay}`;
  const notes: string[] = [];
  if (env(a) !== env(b)) notes.push(`the runs differ in machine or underlay: A ${env(a)}; B ${env(b)}`);
  if (a.settings.quick || b.settings.quick) notes.push('a quick run is a smoke test: its figures are noisy');
  return (
    `A: ${names[0]} (${a.startedAt})\nB: ${names[1]} (${b.startedAt})\n\n` +
    table(rows) +
    notes.map((n) => `note: ${n}\n`).join('')
  );
}
