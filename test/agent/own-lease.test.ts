import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { parseNetworkConfig } from '../../src/config/network-config.js';
import { EtcdLink } from '../../src/agent/etcd-link.js';
import { LeaseManager } from '../../src/agent/lease-manager.js';
import { AgentMetrics } from '../../src/agent/metrics.js';
import { OwnLease } from '../../src/agent/own-lease.js';
import { connectEtcd, SubnetRegistry } from '../../src/store/registry.js';
import { Cidr } from '../../src/util/ipv4.js';
import { Timers } from '../../src/util/timers.js';
import { startTestEtcd } from '../helpers/etcd.js';

const silent = pino({ level: 'silent' });
const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}';
const attrs = { PublicIP: '198.18.0.70', PublicIPv6: null, BackendType: 'host-gw' };

test('the first renewal comes when the lease held needs it, not a full period after the start', () => {
  const mgr = (ttlSeconds: number, renewMarginSeconds: number) =>
    new LeaseManager(
      {} as SubnetRegistry,
      parseNetworkConfig(CONFIG),
      { ttlSeconds, renewMarginSeconds },
      silent,
    );
  const m = mgr(86_400, 3600); // Flannel's defaults: renew every 23 h
  assert.equal(m.firstRenewalInSeconds(86_400), 82_800, 'a fresh lease: a full period');
  assert.equal(m.firstRenewalInSeconds(7200), 3600, 'two hours left: in one, keeping the margin');
  assert.equal(m.firstRenewalInSeconds(600), 0, 'inside the margin already: at once');
  assert.equal(m.firstRenewalInSeconds(-1), 0, 'expired: at once');
  assert.equal(m.firstRenewalInSeconds(undefined), 0, 'unknown: at once');
  assert.equal(mgr(60, 3600).firstRenewalInSeconds(45), 15, 'short TTL: the margin is half of it');
});

test(
  'a lease reused late in its TTL on a restart is renewed before it expires (real etcd)',
  { timeout: 60_000 },
  async (t) => {
    const etcd = await startTestEtcd();
    t.after(() => etcd.stop());
    const registry = new SubnetRegistry(connectEtcd([etcd.endpoint]), '/own-lease/network');
    t.after(() => registry.close());
    await registry.putConfigText(CONFIG);
    // What the last run left: this node's lease with 4 s of its TTL to go (e.g. flanneld's, or weft's
    // after a long outage of the agent).
    const subnet = Cidr.parse('10.244.7.0/24')!;
    const id = await registry.grant(4);
    assert.ok(await registry.casPut(subnet, attrs, id, undefined));

    const stopper = new AbortController();
    const metrics = new AgentMetrics();
    const link = new EtcdLink(registry, [etcd.endpoint], metrics, silent, stopper.signal);
    // A 30 s TTL renewed 10 s before its end: without the fix, the first renewal would come after 20 s.
    const manager = new LeaseManager(
      registry,
      parseNetworkConfig(CONFIG),
      { ttlSeconds: 30, renewMarginSeconds: 10 },
      silent,
    );
    const lost: string[] = [];
    const own = new OwnLease(manager, link, metrics, silent, stopper.signal, attrs, async (old) => {
      lost.push(old.subnet.toString());
    });
    const timers = new Timers();
    t.after(() => {
      stopper.abort();
      timers.clear();
    });
    const held = await own.republish('acquire a subnet lease');
    assert.equal(held.subnet.toString(), '10.244.7.0/24');
    assert.equal(held.leaseId, id, 'the lease is reused as it is (no write)');
    await own.startRenewing(timers);

    const deletions: string[] = [];
    const stopWatch = await registry.watch(String(BigInt((await registry.list()).revision) + 1n), {
      onEvents: (evs) => {
        for (const e of evs) if (e.type === 'delete') deletions.push(e.key);
      },
      onLost: () => undefined,
      onDisconnected: () => undefined,
    });
    t.after(() => stopWatch());
    await new Promise((r) => setTimeout(r, 6000)); // past the 4 s the reused lease had

    const { leases } = await registry.list();
    const now = leases.find((l) => l.subnet.equals(subnet));
    assert.ok(now, 'the key is still there');
    assert.notEqual(now.leaseId, id, 'bound to a fresh etcd lease');
    assert.ok((await registry.ttlLeft(now.leaseId)) > 20, "with weft's TTL");
    assert.deepEqual(deletions, [], 'the key never expired');
    assert.deepEqual(lost, [], 'never lost and re-acquired');
  },
);
