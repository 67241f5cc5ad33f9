import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { parseNetworkConfig } from '../../src/config/network-config.js';
import { LeaseManager } from '../../src/agent/lease-manager.js';
import { connectEtcd, SubnetRegistry } from '../../src/store/registry.js';
import { startTestEtcd } from '../helpers/etcd.js';

const silent = pino({ level: 'silent' });
const attrs = (ip: string) => ({ PublicIP: ip, PublicIPv6: null, BackendType: 'host-gw' });

test('lease manager against a real etcd', { timeout: 60_000 }, async (t) => {
  const etcd = await startTestEtcd();
  t.after(() => etcd.stop());
  let prefixN = 0;
  const setup = async (config: string) => {
    const prefix = `/test${prefixN++}/network`;
    const registry = new SubnetRegistry(connectEtcd([etcd.endpoint]), prefix);
    t.after(() => registry.close());
    await registry.putConfigText(config);
    const mgr = () =>
      new LeaseManager(
        registry,
        parseNetworkConfig(config),
        { ttlSeconds: 60, renewMarginSeconds: 3600 },
        silent,
      );
    return { registry, mgr, prefix };
  };

  await t.test('30 nodes acquiring at once all get distinct subnets (compare-and-swap)', async () => {
    const { mgr } = await setup('{"Network":"10.244.0.0/16"}');
    const leases = await Promise.all(
      Array.from({ length: 30 }, (_, i) => mgr().acquire(attrs(`198.18.0.${i + 10}`))),
    );
    assert.equal(new Set(leases.map((l) => l.subnet.toString())).size, 30);
    assert.ok(leases.every((l) => l.leaseId !== '0'));
  });

  await t.test(
    'a restarted node gets its own lease back without a write; a renewal keeps the subnet',
    async () => {
      const { mgr, registry } = await setup('{"Network":"10.244.0.0/16"}');
      const first = await mgr().acquire(attrs('198.18.0.5'));
      const again = await mgr().acquire(attrs('198.18.0.5'));
      assert.equal(again.subnet.toString(), first.subnet.toString());
      assert.equal(again.modRevision, first.modRevision, 'nothing was rewritten');
      const renewed = await mgr().renew(again);
      assert.ok(renewed);
      assert.equal(renewed.subnet.toString(), first.subnet.toString());
      assert.notEqual(renewed.leaseId, first.leaseId);
      assert.ok((await registry.ttlLeft(renewed.leaseId)) > 0);
      assert.ok((await registry.ttlLeft(first.leaseId)) < 0, 'the old etcd lease was revoked');
    },
  );

  await t.test('reservations (keys without TTL) are honoured and never handed to another node', async () => {
    // A /28 cut into /30s: 4 subnets, the first skipped: 10.10.0.4, .8, .12 are the candidates.
    const { mgr, registry, prefix } = await setup('{"Network":"10.10.0.0/28","SubnetLen":30}');
    await registry.client.put(`${prefix}/subnets/10.10.0.4-30`).value(JSON.stringify(attrs('198.18.0.40')));
    await registry.client.put(`${prefix}/subnets/10.10.0.8-30`).value(JSON.stringify(attrs('198.18.0.41')));
    const mine = await mgr().acquire(attrs('198.18.0.40'));
    assert.equal(mine.subnet.toString(), '10.10.0.4/30');
    assert.equal(mine.leaseId, '0', 'a reservation stays without TTL');
    const other = await mgr().acquire(attrs('198.18.0.50'));
    assert.equal(other.subnet.toString(), '10.10.0.12/30', 'the only unreserved subnet');
    await assert.rejects(mgr().acquire(attrs('198.18.0.51')), /no free subnet left in 10\.10\.0\.0\/28/);
  });

  await t.test('the previous subnet from subnet.env is taken again when it is free', async () => {
    const { mgr } = await setup('{"Network":"10.244.0.0/16"}');
    const prev = (await mgr().acquire(attrs('198.18.0.60'))).subnet;
    const { mgr: mgr2 } = await setup('{"Network":"10.244.0.0/16"}');
    const again = await mgr2().acquire(attrs('198.18.0.61'), prev);
    assert.equal(again.subnet.toString(), prev.toString());
  });
});
