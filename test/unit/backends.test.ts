import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diff, ownRoutesListing, type Observed } from '../../src/agent/dataplane-diff.js';
import { AutoBackend } from '../../src/backend/auto.js';
import { HostGwBackend } from '../../src/backend/host-gw.js';
import { NeutronBackend } from '../../src/backend/neutron.js';
import type { Backend, CloudView, NodeContext, Plan } from '../../src/backend/types.js';
import { VxlanBackend } from '../../src/backend/vxlan.js';
import { parseNetworkConfig } from '../../src/config/network-config.js';
import { render } from '../../src/kernel/ops.js';
import type { FdbEntry, NeighEntry, RouteEntry } from '../../src/kernel/types.js';
import type { Lease } from '../../src/store/lease.js';
import { Cidr, parseIPv4 } from '../../src/util/ipv4.js';
import * as rec from './fixtures/kernel-recorded.js';

/**
 * Every backend planner, end to end through the pure reconcile: leases in, plan, diff against the
 * kernel listings recorded from a real node (fixtures/kernel-recorded.ts), iproute2 lines out.
 */

const own: Lease = {
  subnet: Cidr.parse('10.244.1.0/24')!,
  attrs: { PublicIP: '198.18.0.11' },
  leaseId: '1',
  modRevision: '1',
};

function ctx(type: string, cloud?: CloudView): NodeContext {
  return {
    iface: { name: 'eth0', mtu: 1500, prefixes: [Cidr.parse('198.18.0.0/24')!] },
    publicIP: parseIPv4('198.18.0.11')!,
    config: parseNetworkConfig(`{"Network":"10.244.0.0/16","Backend":{"Type":"${type}"}}`),
    ...(cloud && { cloud }),
  };
}

const vxlanLease = (
  n: number,
  publicIP = `198.18.0.1${n}`,
  mac = `02:bb:00:00:00:0${n}`,
  vni = 1,
): Lease => ({
  subnet: Cidr.parse(`10.244.${n}.0/24`)!,
  attrs: { PublicIP: publicIP, BackendType: 'vxlan', BackendData: { VNI: vni, VtepMAC: mac } },
  leaseId: '7',
  modRevision: '9',
});
const routedLease = (
  n: number,
  publicIP: string,
  type = 'host-gw',
  cloud?: { Pairs: boolean; Route: boolean },
): Lease => ({
  subnet: Cidr.parse(`10.244.${n}.0/24`)!,
  attrs: { PublicIP: publicIP, BackendType: type, ...(cloud && { BackendData: { Cloud: cloud } }) },
  leaseId: '7',
  modRevision: '9',
});

const vxlanNode = (): Observed => ({
  routes: JSON.parse(rec.ROUTES_ALL) as RouteEntry[],
  vxlanDev: 'weft.1',
  neighs: JSON.parse(rec.NEIGH_WEFT1) as NeighEntry[],
  fdb: JSON.parse(rec.FDB_WEFT1) as FdbEntry[],
});
const hostGwNode = (): Observed => ({
  routes: ownRoutesListing(JSON.parse(rec.ROUTES_87_HOSTGW) as RouteEntry[]),
  vxlanDev: undefined,
  neighs: [],
  fdb: [],
});

function reconcile(b: Backend, c: NodeContext, peers: Lease[], observed: Observed) {
  const p: Plan = b.plan(c, own, peers);
  const d = diff(p, observed, b.usesVxlan ? 'weft.1' : undefined);
  return {
    lines: d.ops.map((o) => {
      const r = render(o.op);
      return `${r.tool} ${r.line}`;
    }),
    paths: p.peers.map((x) => `${x.subnet.toString()} ${x.path}${x.reason ? `: ${x.reason}` : ''}`),
  };
}

test('vxlan planner: unchanged, added, removed and changed peers; a peer on another VNI is refused by name', () => {
  const b = new VxlanBackend(1);
  const c = ctx('vxlan');
  assert.deepEqual(reconcile(b, c, [vxlanLease(2), vxlanLease(3)], vxlanNode()).lines, []);
  assert.deepEqual(reconcile(b, c, [vxlanLease(2), vxlanLease(3), vxlanLease(4)], vxlanNode()).lines, [
    'bridge fdb replace 02:bb:00:00:00:04 dev weft.1 dst 198.18.0.14 self permanent',
    'ip neigh replace 10.244.4.0 lladdr 02:bb:00:00:00:04 dev weft.1 nud permanent',
    'ip route replace 10.244.4.0/24 via 10.244.4.0 dev weft.1 onlink proto 87',
  ]);
  assert.deepEqual(reconcile(b, c, [vxlanLease(2)], vxlanNode()).lines, [
    'ip route del 10.244.3.0/24 via 10.244.3.0 dev weft.1 proto 87',
    'ip neigh del 10.244.3.0 dev weft.1',
    'bridge fdb del 02:bb:00:00:00:03 dev weft.1 dst 198.18.0.13 self',
  ]);
  // n3 restarted with a new VTEP MAC (its device was re-created).
  assert.deepEqual(
    reconcile(b, c, [vxlanLease(2), vxlanLease(3, '198.18.0.13', '02:bb:00:00:00:33')], vxlanNode()).lines,
    [
      'bridge fdb replace 02:bb:00:00:00:33 dev weft.1 dst 198.18.0.13 self permanent',
      'ip neigh replace 10.244.3.0 lladdr 02:bb:00:00:00:33 dev weft.1 nud permanent',
      'bridge fdb del 02:bb:00:00:00:03 dev weft.1 dst 198.18.0.13 self',
    ],
  );
  const r = reconcile(
    b,
    c,
    [vxlanLease(2), vxlanLease(3), vxlanLease(4, '198.18.0.14', '02:bb:00:00:00:04', 7)],
    vxlanNode(),
  );
  assert.deepEqual(r.lines, []);
  assert.match(r.paths[2]!, /10\.244\.4\.0\/24 unreachable: .*uses VNI 7, this node VNI 1/);
});

test('host-gw planner: a direct route per on-link peer; an off-link peer is refused by name, no route', () => {
  const b = new HostGwBackend();
  const c = ctx('host-gw');
  assert.deepEqual(reconcile(b, c, [routedLease(4, '198.18.0.14')], hostGwNode()).lines, []);
  const r = reconcile(
    b,
    c,
    [routedLease(4, '198.18.0.14'), routedLease(5, '198.18.0.15'), routedLease(6, '198.18.1.16')],
    hostGwNode(),
  );
  assert.deepEqual(r.lines, ['ip route replace 10.244.5.0/24 via 198.18.0.15 dev eth0 proto 87']);
  assert.match(
    r.paths[2]!,
    /10\.244\.6\.0\/24 unreachable: .*not on-link on eth0 \(198\.18\.0\.0\/24\).*use vxlan or auto/,
  );
  assert.deepEqual(reconcile(b, c, [], hostGwNode()).lines, [
    'ip route del 10.244.4.0/24 via 198.18.0.14 dev eth0 proto 87',
  ]);
  // A peer that moved to another address: the route is replaced in place.
  assert.deepEqual(reconcile(b, c, [routedLease(4, '198.18.0.24')], hostGwNode()).lines, [
    'ip route replace 10.244.4.0/24 via 198.18.0.24 dev eth0 proto 87',
  ]);
});

test('auto planner: on-link peers go direct (leaving VXLAN), off-link ones over VXLAN', () => {
  const b = new AutoBackend(1);
  const c = ctx('auto');
  // n2 and n3 are on-link: their VXLAN objects go, direct routes replace the tunnel routes.
  const r = reconcile(b, c, [vxlanLease(2), vxlanLease(3), vxlanLease(8, '198.18.1.18')], vxlanNode());
  assert.deepEqual(r.lines, [
    'bridge fdb replace 02:bb:00:00:00:08 dev weft.1 dst 198.18.1.18 self permanent',
    'ip neigh replace 10.244.8.0 lladdr 02:bb:00:00:00:08 dev weft.1 nud permanent',
    'ip route replace 10.244.2.0/24 via 198.18.0.12 dev eth0 proto 87',
    'ip route replace 10.244.3.0/24 via 198.18.0.13 dev eth0 proto 87',
    'ip route replace 10.244.8.0/24 via 10.244.8.0 dev weft.1 onlink proto 87',
    'ip neigh del 10.244.2.0 dev weft.1',
    'ip neigh del 10.244.3.0 dev weft.1',
    'bridge fdb del 02:bb:00:00:00:03 dev weft.1 dst 198.18.0.13 self',
    'bridge fdb del 02:bb:00:00:00:02 dev weft.1 dst 198.18.0.12 self',
  ]);
  assert.deepEqual(r.paths, ['10.244.2.0/24 direct', '10.244.3.0/24 direct', '10.244.8.0/24 vxlan']);
});

test('neutron planner: same subnet direct, across subnets via the router, not-ready peers refused by name', () => {
  const b = new NeutronBackend();
  const cloud: CloudView = {
    classify: (peerIp) =>
      peerIp.startsWith('198.18.0.')
        ? 'same-subnet'
        : peerIp.startsWith('198.18.1.')
          ? 'cloud-router'
          : 'none',
    routerAddress: parseIPv4('198.18.0.1')!,
    own: { Pairs: true, Route: true },
    problems: [],
  };
  const c = ctx('neutron', cloud);
  const ready = { Pairs: true, Route: true };
  const r = reconcile(
    b,
    c,
    [
      routedLease(4, '198.18.0.14', 'neutron', ready),
      routedLease(5, '198.18.1.15', 'neutron', ready),
      routedLease(6, '198.18.1.16', 'neutron', { Pairs: false, Route: false }),
      routedLease(7, '203.0.113.7', 'neutron', ready),
    ],
    hostGwNode(),
  );
  assert.deepEqual(r.lines, ['ip route replace 10.244.5.0/24 via 198.18.0.1 dev eth0 proto 87']);
  assert.deepEqual(r.paths.slice(0, 2), [
    '10.244.4.0/24 direct',
    '10.244.5.0/24 cloud: via router 198.18.0.1',
  ]);
  assert.match(r.paths[2]!, /unreachable: .*has not made its port accept pod traffic/);
  assert.match(r.paths[3]!, /unreachable: .*neither on this node's subnet nor behind its cloud router/);
  // The peer gone: its route goes; this node's own port not ready yet: nothing is routed.
  assert.deepEqual(reconcile(b, c, [], hostGwNode()).lines, [
    'ip route del 10.244.4.0/24 via 198.18.0.14 dev eth0 proto 87',
  ]);
  const notReady = ctx('neutron', { ...cloud, own: { Pairs: false, Route: false }, problems: ['quota'] });
  const nr = reconcile(b, notReady, [routedLease(4, '198.18.0.14', 'neutron', ready)], hostGwNode());
  assert.deepEqual(nr.lines, ['ip route del 10.244.4.0/24 via 198.18.0.14 dev eth0 proto 87']);
  assert.match(nr.paths[0]!, /this node's port does not accept pod traffic: quota/);
});
