import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createBackend } from '../../src/backend/index.js';
import { podMtu, type NodeContext } from '../../src/backend/types.js';
import { udpPeerTable } from '../../src/backend/udp.js';
import { parseNetworkConfig } from '../../src/config/network-config.js';
import type { Lease } from '../../src/store/lease.js';
import { ConfigError } from '../../src/util/errors.js';
import { Cidr, parseIPv4 } from '../../src/util/ipv4.js';
import { defaultWorkers, sameSettings, type HelperConfig } from '../../src/udp/helper.js';

const config = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"udp"}}');
const ctx: NodeContext = {
  iface: { name: 'eth0', mtu: 1500, prefixes: [Cidr.parse('198.18.0.0/24')!] },
  publicIP: parseIPv4('198.18.0.11')!,
  config,
};
const lease = (subnet: string, ip: string, type?: string): Lease => ({
  subnet: Cidr.parse(subnet)!,
  attrs: { PublicIP: ip, ...(type !== undefined && { BackendType: type }) },
  leaseId: '1',
  modRevision: '1',
});

test('udp config: Flannel port 8285 by default, Port/Batch/Workers honoured and checked', () => {
  assert.deepEqual([config.backend.type, config.backend.port, config.backend.batch], ['udp', 8285, 64]);
  const c = parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Port":9000,"Batch":1}}');
  assert.deepEqual([c.backend.port, c.backend.batch, c.backend.workers], [9000, 1, undefined]);
  // vxlan keeps its own default port
  assert.equal(parseNetworkConfig('{"Network":"10.244.0.0/16"}').backend.port, 8472);
  assert.throws(
    () => parseNetworkConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"udp","Batch":0}}'),
    (e: unknown) =>
      e instanceof ConfigError && e.field === 'Backend.Batch' && /between 1 and 1024/.test(e.message),
  );
});

test('udp plan: one route of the cluster network into the TUN device, every udp peer by subnet', () => {
  const b = createBackend(config);
  assert.equal(b.type, 'udp');
  assert.equal(podMtu(ctx, b), 1472, 'pod MTU is the underlay MTU minus 28');
  assert.deepEqual(b.leaseAttrs(undefined, undefined), { BackendType: 'udp' });
  const own = lease('10.244.1.0/24', '198.18.0.11', 'udp');
  const plan = b.plan(ctx, own, [
    lease('10.244.2.0/24', '198.18.0.12', 'udp'),
    lease('10.244.3.0/24', '198.18.1.13'), // a Flannel udp node: no BackendType, behind a router
    lease('10.244.4.0/24', '198.18.0.14', 'vxlan'),
    lease('10.244.5.0/24', '198.18.0.11', 'udp'),
  ]);
  assert.deepEqual(
    plan.routes.map((r) => [r.dst.toString(), r.via, r.dev]),
    [['10.244.0.0/16', undefined, 'weft.udp']],
  );
  assert.deepEqual(plan.vteps, []);
  assert.deepEqual(
    plan.peers.map((p) => [p.subnet.toString(), p.path]),
    [
      ['10.244.2.0/24', 'udp'],
      ['10.244.3.0/24', 'udp'],
      ['10.244.4.0/24', 'unreachable'],
      ['10.244.5.0/24', 'unreachable'],
    ],
  );
  assert.match(plan.peers[2]!.reason!, /runs backend vxlan, this node udp: run the same backend/);
  assert.match(plan.peers[3]!.reason!, /claims this node's public IP 198\.18\.0\.11/);
  assert.deepEqual(
    udpPeerTable(plan).map((p) => `${p.subnet.toString()}=${p.ip}`),
    ['10.244.2.0/24=198.18.0.12', '10.244.3.0/24=198.18.1.13'],
  );
});

test('a running data path is adopted only with the same settings; Flannel mode has one worker', () => {
  const want = { tun: 'weft.udp', local: '198.18.0.11', port: 8285, mtu: 1472, batch: 64, workers: 2 };
  const running: HelperConfig = { ...want, version: '1', pid: 7, mode: 'gso' };
  assert.equal(sameSettings(running, want), true);
  assert.equal(sameSettings({ ...running, mtu: 1422 }, want), false);
  assert.equal(
    sameSettings({ ...running, batch: 1, workers: 1, mode: 'batch1' }, { ...want, batch: 1 }),
    true,
  );
  assert.equal(defaultWorkers(2), 1);
  assert.equal(defaultWorkers(8), 4);
});
