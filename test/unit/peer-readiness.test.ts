import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { PeerPlan } from '../../src/backend/types.js';
import { PeerReadinessTracker } from '../../src/agent/peer-readiness.js';
import { Cidr } from '../../src/util/ipv4.js';
import { pino } from 'pino';
import { Timers } from '../../src/util/timers.js';

const peer = (
  subnet: string,
  ip: string,
  path: PeerPlan['path'],
  extra: Partial<PeerPlan> = {},
): PeerPlan => ({
  subnet: Cidr.parse(subnet)!,
  publicIP: ip,
  path,
  ...extra,
});
const until = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};
const log = pino({ level: 'silent' });

/**
 * A fake data path (a mock: the real probe is a TCP connection across Neutron, covered by
 * test/neutron/ready-reachable): which peer .0 addresses answer, who was probed from where, and how
 * many probes were under way at once.
 */
function dataPath(answerAfterMs = 0) {
  const answering = new Set<string>();
  const probes: string[] = [];
  const load = { now: 0, max: 0 };
  return {
    answering,
    probes,
    load,
    target: {
      source: () => '10.244.1.0',
      probe: async (src: string, dst: string) => {
        probes.push(`${src}->${dst}`);
        load.max = Math.max(load.max, ++load.now);
        await new Promise((r) => setTimeout(r, answerAfterMs));
        load.now--;
        return answering.has(dst) ? { answered: true } : { answered: false, why: 'no answer within 1000 ms' };
      },
    },
  };
}

test('without a cloud: programmed peers are ready at once, unroutable ones refused with the reason', () => {
  const d = dataPath();
  const t = new PeerReadinessTracker(
    d.target,
    () => false,
    log,
    () => undefined,
  );
  t.update([
    peer('10.244.2.0/24', '10.0.1.12', 'direct'),
    peer('10.244.3.0/24', '10.0.2.13', 'unreachable', { reason: 'not on-link' }),
  ]);
  assert.deepEqual(
    t.list().map((p) => [p.subnet, p.state, p.reason]),
    [
      ['10.244.2.0/24', 'ready', undefined],
      ['10.244.3.0/24', 'refused', 'not on-link'],
    ],
  );
  assert.deepEqual(t.reasons(), []);
  assert.deepEqual(d.probes, [], 'nothing is probed without a cloud');
});

test('a cloud path is pending until its data path answers a probe from this node’s .0 to the peer’s .0', async (tt) => {
  const d = dataPath();
  let changes = 0;
  const t = new PeerReadinessTracker(
    d.target,
    () => true,
    log,
    () => changes++,
  );
  const timers = new Timers();
  tt.after(() => timers.clear());
  t.update([
    peer('10.244.2.0/24', '10.0.1.12', 'direct'),
    peer('10.244.3.0/24', '10.0.2.13', 'cloud', { reason: 'via router 10.0.1.1' }),
  ]);
  t.start(timers);
  assert.ok(await until(() => d.probes.length >= 2));
  assert.deepEqual(
    t.list().map((p) => p.state),
    ['pending', 'pending'],
  );
  assert.equal(t.reasons().length, 2);
  assert.match(
    t.reasons()[1]!,
    /^peer 10\.244\.3\.0\/24 \(10\.0\.2\.13\) pending: .*no answer from 10\.244\.3\.0 to a probe from 10\.244\.1\.0 over the cloud path \(no answer within 1000 ms\)/,
  );
  d.answering.add('10.244.2.0');
  assert.ok(await until(() => t.list()[0]!.state === 'ready'));
  assert.equal(t.list()[1]!.state, 'pending', 'the other still waits');
  d.answering.add('10.244.3.0');
  assert.ok(await until(() => t.reasons().length === 0));
  assert.ok(d.probes.includes('10.244.1.0->10.244.3.0'));
  assert.ok(changes >= 3);
});

test('a waiting peer counts as refused after the pending limit; a ready peer is not probed again until replanned', async (tt) => {
  const d = dataPath();
  const t = new PeerReadinessTracker(
    d.target,
    () => true,
    log,
    () => undefined,
    { pendingLimitMs: 300 },
  );
  const timers = new Timers();
  tt.after(() => timers.clear());
  d.answering.add('10.244.2.0');
  t.update([
    peer('10.244.2.0/24', '10.0.1.12', 'direct'),
    peer('10.244.3.0/24', '10.0.2.13', 'unreachable', {
      reason: 'peer has not made its port accept pod traffic',
      waiting: true,
    }),
  ]);
  t.start(timers);
  assert.equal(t.list()[1]!.state, 'pending');
  assert.ok(await until(() => t.list()[0]!.state === 'ready'));
  assert.ok(await until(() => t.list()[1]!.state === 'refused'));
  assert.match(t.list()[1]!.reason!, /^pending for 0\.3 s: peer has not made its port accept pod traffic/);
  const sent = d.probes.length;
  await new Promise((r) => setTimeout(r, 600));
  assert.equal(d.probes.length, sent, 'a ready peer is not probed again; a waiting one never was');
  // A new plan for the peer (its lease published readiness) starts it over.
  t.update([peer('10.244.2.0/24', '10.0.1.12', 'direct'), peer('10.244.3.0/24', '10.0.2.13', 'cloud')]);
  assert.equal(t.list()[1]!.state, 'pending');
  assert.ok(await until(() => d.probes.length > sent));
  assert.deepEqual(d.probes.slice(sent), ['10.244.1.0->10.244.3.0']);
});

test('probing is bounded on a large cluster: a rate per second, a cap in flight, the longest-waiting peers first', async (tt) => {
  const d = dataPath(150); // every probe takes 150 ms; none answers
  const t = new PeerReadinessTracker(
    d.target,
    () => true,
    log,
    () => undefined,
    { perSecond: 40, inFlight: 8 },
  );
  const timers = new Timers();
  tt.after(() => timers.clear());
  const many = Array.from({ length: 1000 }, (_, i) =>
    peer(`10.${100 + (i >> 8)}.${i & 255}.0/24`, `10.0.${i >> 8}.${i & 255}`, 'cloud'),
  );
  t.update(many);
  t.start(timers);
  await new Promise((r) => setTimeout(r, 2000));
  timers.clear();
  assert.ok(d.load.max <= 8, `at most 8 probes in flight (saw ${d.load.max})`);
  // 2 s at 40/s, one tick's worth of slack: not 1,000 probes (one per pending peer), not 8,000.
  assert.ok(d.probes.length <= 90, `probes in 2 s: ${d.probes.length}`);
  assert.ok(d.probes.length >= 20, `probing goes on (${d.probes.length})`);
  assert.equal(new Set(d.probes).size, d.probes.length, 'the longest-waiting peers first: none twice yet');
  assert.equal(t.reasons().at(-1), '997 more peers pending');
});
