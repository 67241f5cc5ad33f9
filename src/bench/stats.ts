import type { Stat } from './result.js';

/** Median of a non-empty list (mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function stat(values: readonly number[]): Stat {
  return {
    median: round(median(values)),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
    values: values.map(round),
  };
}

/** Four significant decimals are more than any of these figures can claim. */
const round = (x: number): number => Math.round(x * 10_000) / 10_000;

/** a / b, or null when either is missing or b is not positive. */
export function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || !(b > 0)) return null;
  return round(a / b);
}
