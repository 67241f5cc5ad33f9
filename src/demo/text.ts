import { formatTable } from '../util/table.js';
import type { ClaimResult, DemoResult, QuantifyRow } from './result.js';

/** The demo's text: the table beside the talk's figures, and the summary at the end. */

const f = (x: number | undefined, d = 2) => (x === undefined ? '–' : x.toFixed(d));

function measured(r: QuantifyRow): [string, string] {
  if (r.status === 'measured') return [f(r.gbps), f(r.ratio)];
  return [r.status === 'unreachable' ? 'dropped' : r.status, ''];
}

/** The talk's table: measured beside the talk's 10 GbE figures, as ratios to native (VM to VM). */
export function formatTable1(rows: QuantifyRow[]): string {
  const t = [
    ['PATH', 'GBIT/S', '× NATIVE', 'POD MTU', 'TALK GBIT/S', 'TALK ×', 'NOTE'],
    ...rows.map((r) => {
      const [g, x] = measured(r);
      return [
        r.label,
        g,
        x,
        r.mtu !== undefined ? String(r.mtu) : '',
        r.talk ? f(r.talk.gbps, r.talk.gbps < 1 ? 3 : 2) : '',
        r.talk ? f(r.talk.ratio) : '',
        r.status === 'measured' ? '' : shorten(r.reason ?? '', 110),
      ];
    }),
  ];
  return formatTable(t, (c, i) => i >= 1 && i <= 5 && /^[\d.–]+$/.test(c));
}

const shorten = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

const MARK: Record<ClaimResult['verdict'], string> = {
  confirmed: 'confirmed',
  differs: 'DIFFERS',
  'not-measured': 'not measured',
};

export function formatSummary(r: DemoResult): string {
  const lines = ['', `== the talk's claims, measured here (${r.underlay} underlay):`];
  for (const c of r.claims)
    lines.push(`   [${MARK[c.verdict]}] ${c.claim}`, `      ${shorten(c.measured, 300)}`);
  lines.push('', '== steps:');
  for (const s of r.steps)
    lines.push(`   ${s.status.padEnd(14)} ${s.title} (${s.seconds} s)${s.error ? `: ${s.error}` : ''}`);
  lines.push('', r.ok ? `== demo passed in ${r.seconds} s` : `== demo FAILED after ${r.seconds} s`);
  return lines.join('\n');
}
