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

/** A fake data path: which peer .0 addresses answer a probe, and who was probed from where. */
function dataPath() {
  const answering = new Set<string>();
  const probes: string[] = [];
  return {
    answering,
    probes,
    target: {
      source: () => '10.244.1.0',
      ping: async (src: string, dst: string) => {
        probes.push(`${src}->${dst}`);
        return answering.has(dst);
      },
    },
  };
}

test('without a cloud: programmed peers are ready at once, unroutable ones refused with the reason', () => {
  const d = dataPath();
  const t = new PeerReadinessTracker(
    d.target,
    () => false,
    30,
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
    30,
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
    /^peer 10\.244\.3\.0\/24 \(10\.0\.2\.13\) pending: .*no answer from 10\.244\.3\.0 to a ping from 10\.244\.1\.0/,
  );
  d.answering.add('10.244.2.0');
  assert.ok(await until(() => t.list()[0]!.state === 'ready'));
  assert.equal(t.list()[1]!.state, 'pending', 'the other still waits');
  d.answering.add('10.244.3.0');
  assert.ok(await until(() => t.reasons().length === 0));
  assert.ok(d.probes.includes('10.244.1.0->10.244.3.0'));
  assert.ok(changes >= 3);
});

test('a waiting peer counts as refused after the pending limit; a ready one that stops answering is pending again', async (tt) => {
  const d = dataPath();
  const t = new PeerReadinessTracker(
    d.target,
    () => true,
    0.05,
    log,
    () => undefined,
    300,
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
  d.answering.clear();
  assert.ok(await until(() => t.list()[0]!.state === 'pending'));
  assert.match(t.list()[0]!.reason!, /^stopped answering: no answer from 10\.244\.2\.0/);
  // A new plan for the peer (its lease published readiness) starts it over.
  t.update([peer('10.244.2.0/24', '10.0.1.12', 'direct'), peer('10.244.3.0/24', '10.0.2.13', 'cloud')]);
  assert.equal(t.list()[1]!.state, 'pending');
});
