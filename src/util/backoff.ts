/**
 * Retrying with exponential backoff, in one place: every loop that waits for etcd, a cloud API or a
 * renewal uses it, so that the delays, the giving-up rules and the stop on shutdown are the same
 * everywhere. The delay sequence is pure (`backoffDelays`); `retry` adds the waiting.
 */
export interface BackoffPolicy {
  /** The first delay after a failure. */
  initialMs: number;
  /** Delays never exceed this. */
  maxMs: number;
  /** Each delay is the previous one times this (2 unless told; 1 = a fixed delay). */
  factor?: number;
}

export interface RetryOptions extends BackoffPolicy {
  /** Errors for which waiting cannot help (bad configuration): rethrown at once. */
  fatal?: (err: unknown) => boolean;
  /** Called before each wait, e.g. to log one line naming the cause and the delay. */
  onRetry?: (err: unknown, delayMs: number, attempt: number) => void;
  /** Shutdown: the wait ends at once and `retry` rethrows the last error. */
  signal?: AbortSignal;
}

/** The delays of a backoff policy: initial, initial·factor, … capped at max (endless). */
export function* backoffDelays(p: BackoffPolicy): Generator<number, never, void> {
  let d = Math.min(p.initialMs, p.maxMs);
  for (;;) {
    yield d;
    d = Math.min(d * (p.factor ?? 2), p.maxMs);
  }
}

/** Waits `ms`; resolves early (to false) when the signal aborts, else to true. */
export function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (completed: boolean) => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(completed);
    };
    const onAbort = () => done(false);
    const timer = setTimeout(() => done(true), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Runs `fn` until it succeeds. A fatal error, or any error once the signal has aborted, is rethrown;
 * every other failure is reported through onRetry and retried after the next delay of the policy.
 */
export async function retry<T>(fn: () => Promise<T>, o: RetryOptions): Promise<T> {
  const delays = backoffDelays(o);
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (o.fatal?.(err) || o.signal?.aborted) throw err;
      const delay = delays.next().value;
      o.onRetry?.(err, delay, attempt);
      if (!(await sleep(delay, o.signal))) throw err;
    }
  }
}
