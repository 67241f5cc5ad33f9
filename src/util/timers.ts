/**
 * A group of timers cleared together (a part's periodic work ends with the part). A callback that
 * returns a promise has its rejection left to the callback: the group only schedules.
 */
export class Timers {
  private readonly live = new Set<NodeJS.Timeout>();

  every(ms: number, fn: () => unknown): void {
    this.live.add(setInterval(fn, ms));
  }

  after(ms: number, fn: () => unknown): void {
    const t = setTimeout(() => {
      this.live.delete(t);
      fn();
    }, ms);
    this.live.add(t);
  }

  clear(): void {
    for (const t of this.live) clearTimeout(t);
    this.live.clear();
  }
}
