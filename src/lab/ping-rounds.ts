import { pingOnce } from './netns.js';

/** Something that pings (a namespace) and something that answers (an address). */
type PingPair = readonly [{ netns: string }, { ip: string }];

/**
 * Single pings (pingOnce) from the first of each pair to the second, all pairs at once, in rounds
 * until each pair has answered `rounds` rounds in a row; returns the pairs that had not when
 * `timeoutMs` ran out (none: all answered).
 */
export async function untilAnswered<P extends PingPair>(
  pairs: readonly P[],
  rounds: number,
  timeoutMs: number,
): Promise<P[]> {
  const streak = new Map(pairs.map((p) => [p, 0]));
  const deadline = Date.now() + timeoutMs;
  let left = [...pairs];
  while (left.length) {
    const ok = await Promise.all(left.map(([from, to]) => pingOnce(from.netns, to.ip)));
    left.forEach((p, i) => streak.set(p, ok[i] ? streak.get(p)! + 1 : 0));
    left = left.filter((p) => streak.get(p)! < rounds);
    if (!left.length || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 200)); // an unreachable network answers at once: no tight loop
  }
  return left;
}
