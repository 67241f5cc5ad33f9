import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backoffDelays, retry, sleep } from '../../src/util/backoff.js';
import { ConfigError } from '../../src/util/errors.js';

const take = (n: number, it: Iterator<number>) => Array.from({ length: n }, () => it.next().value as number);

test('delays double from the first one up to the cap, then stay there', () => {
  assert.deepEqual(
    take(8, backoffDelays({ initialMs: 500, maxMs: 10_000 })),
    [500, 1000, 2000, 4000, 8000, 10_000, 10_000, 10_000],
  );
  assert.deepEqual(take(3, backoffDelays({ initialMs: 5000, maxMs: 5000, factor: 1 })), [5000, 5000, 5000]);
  assert.deepEqual(
    take(2, backoffDelays({ initialMs: 20_000, maxMs: 5000 })),
    [5000, 5000],
    'never above the cap',
  );
});

test('retry: failures are reported with the delay before each new attempt, then the result returns', async () => {
  const seen: [string, number, number][] = [];
  let calls = 0;
  const v = await retry(
    async () => {
      if (++calls < 4) throw new Error(`down ${calls}`);
      return 'up';
    },
    { initialMs: 1, maxMs: 4, onRetry: (e, d, n) => seen.push([(e as Error).message, d, n]) },
  );
  assert.equal(v, 'up');
  assert.deepEqual(seen, [
    ['down 1', 1, 1],
    ['down 2', 2, 2],
    ['down 3', 4, 3],
  ]);
});

test('retry: a fatal error is rethrown at once, without a retry', async () => {
  let calls = 0;
  await assert.rejects(
    retry(
      async () => {
        calls++;
        throw new ConfigError('Network', 'is not a CIDR');
      },
      { initialMs: 1, maxMs: 1, fatal: (e) => e instanceof ConfigError },
    ),
    /Network: is not a CIDR/,
  );
  assert.equal(calls, 1);
});

test('retry: stopping ends the wait at once and rethrows the last failure', async () => {
  const stop = new AbortController();
  let calls = 0;
  const p = retry(
    async () => {
      calls++;
      throw new Error('etcd is unreachable');
    },
    { initialMs: 60_000, maxMs: 60_000, signal: stop.signal },
  );
  setTimeout(() => stop.abort(), 20);
  await assert.rejects(p, /etcd is unreachable/);
  assert.equal(calls, 1, 'no attempt after the stop');
  assert.equal(await sleep(60_000, stop.signal), false, 'a sleep after the stop ends at once');
  assert.equal(await sleep(1), true);
});
