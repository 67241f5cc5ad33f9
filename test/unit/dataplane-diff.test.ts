import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  afterApply,
  agrees,
  diff,
  owned,
  ownRoutesListing,
  WEFT_ROUTE_PROTO,
  type Observed,
} from '../../src/agent/dataplane-diff.js';
import type { Plan } from '../../src/backend/types.js';
import type { OpFailure } from '../../src/kernel/batch.js';
import { parseMonitorLine, type KernelEvent } from '../../src/kernel/monitor.js';
import { render } from '../../src/kernel/ops.js';
import type { FdbEntry, NeighEntry, RouteEntry } from '../../src/kernel/types.js';
import { Cidr, parseIPv4 } from '../../src/util/ipv4.js';
import * as rec from './fixtures/kernel-recorded.js';

/** The recorded node: listings as DataPlane reads them (routes filtered by proto 87) or all of them. */
function recorded(routes = rec.ROUTES_ALL): Observed {
  const listed = JSON.parse(routes) as RouteEntry[];
  return {
    routes: routes === rec.ROUTES_87 ? ownRoutesListing(listed) : listed,
    vxlanDev: 'weft.1',
    neighs: JSON.parse(rec.NEIGH_WEFT1) as NeighEntry[],
    fdb: JSON.parse(rec.FDB_WEFT1) as FdbEntry[],
  };
}

const ip = (s: string) => parseIPv4(s)!;
/** A VXLAN peer as the vxlan backend plans it. */
function vxlanPeer(n: number, mac = `02:bb:00:00:00:0${n}`, remote = `198.18.0.1${n}`) {
  const subnet = Cidr.parse(`10.244.${n}.0/24`)!;
  return {
    route: { dst: subnet, via: subnet.ip, dev: 'weft.1', onlink: true },
    vtep: { neighIP: subnet.ip, mac, remote: ip(remote) },
  };
}
function plan(...peers: ReturnType<typeof vxlanPeer>[]): Plan {
  return { routes: peers.map((p) => p.route), vteps: peers.map((p) => p.vtep), peers: [] };
}
const lines = (d: { ops: { op: Parameters<typeof render>[0] }[] }) =>
  d.ops.map((p) => {
    const r = render(p.op);
    return `${r.tool} ${r.line}`;
  });

test('diff: the kernel already matches the plan — no Op, every object counted unchanged', () => {
  for (const routes of [rec.ROUTES_ALL, rec.ROUTES_87]) {
    const d = diff(plan(vxlanPeer(2), vxlanPeer(3)), recorded(routes), 'weft.1');
    assert.deepEqual(lines(d), []);
    assert.deepEqual([d.added, d.removed, d.unchanged], [0, 0, 6]);
  }
});

test('diff: an added peer gets FDB entry, neighbour, then route — in that order', () => {
  const d = diff(plan(vxlanPeer(2), vxlanPeer(3), vxlanPeer(4)), recorded(), 'weft.1');
  assert.deepEqual(lines(d), [
    'bridge fdb replace 02:bb:00:00:00:04 dev weft.1 dst 198.18.0.14 self permanent',
    'ip neigh replace 10.244.4.0 lladdr 02:bb:00:00:00:04 dev weft.1 nud permanent',
    'ip route replace 10.244.4.0/24 via 10.244.4.0 dev weft.1 onlink proto 87',
  ]);
  assert.deepEqual(
    d.ops.map((p) => p.subject),
    ['198.18.0.14', '10.244.4.0', '10.244.4.0/24'],
  );
  assert.deepEqual([d.added, d.removed, d.unchanged], [3, 0, 6]);
});

test('diff: a removed peer loses route, neighbour and FDB entry; foreign objects are never touched', () => {
  const d = diff(plan(vxlanPeer(2)), recorded(), 'weft.1');
  assert.deepEqual(lines(d), [
    'ip route del 10.244.3.0/24 via 10.244.3.0 dev weft.1 proto 87',
    'ip neigh del 10.244.3.0 dev weft.1',
    'bridge fdb del 02:bb:00:00:00:03 dev weft.1 dst 198.18.0.13 self',
  ]);
  // The static and boot routes, the kernel's route, the REACHABLE neighbour 10.244.9.0 and the
  // all-zero flooding entry are in the listings, and stay even when the plan is empty.
  const none = diff({ routes: [], vteps: [], peers: [] }, recorded(), 'weft.1');
  const text = lines(none).join('\n');
  for (const foreign of ['10.99.0.0', '10.244.251.0', '198.18.0.0/24', '10.244.9.0', '00:00:00:00:00:00'])
    assert.ok(!text.includes(foreign), `${foreign} is not weft's`);
  assert.equal(none.removed, 6);
});

test('diff: a changed peer (new VTEP MAC and public IP) is replaced, its old MAC removed', () => {
  const d = diff(plan(vxlanPeer(2, '02:bb:00:00:00:22', '198.18.0.22'), vxlanPeer(3)), recorded(), 'weft.1');
  assert.deepEqual(lines(d), [
    'bridge fdb replace 02:bb:00:00:00:22 dev weft.1 dst 198.18.0.22 self permanent',
    'ip neigh replace 10.244.2.0 lladdr 02:bb:00:00:00:22 dev weft.1 nud permanent',
    'bridge fdb del 02:bb:00:00:00:02 dev weft.1 dst 198.18.0.12 self',
  ]);
  // Same MAC, new public IP: only the FDB entry changes.
  const moved = diff(
    plan(vxlanPeer(2, '02:bb:00:00:00:02', '198.18.0.32'), vxlanPeer(3)),
    recorded(),
    'weft.1',
  );
  assert.deepEqual(lines(moved), [
    'bridge fdb replace 02:bb:00:00:00:02 dev weft.1 dst 198.18.0.32 self permanent',
  ]);
});

test('diff: listings of another VXLAN device are not diffed (the device changed: re-read first)', () => {
  const d = diff(plan(vxlanPeer(2)), recorded(), 'weft.2');
  const kinds = d.ops.map((p) => p.op.op);
  assert.ok(
    !kinds.includes('neigh-del') && !kinds.includes('fdb-del'),
    'nothing listed on weft.1 is removed',
  );
  assert.deepEqual(
    kinds.filter((k) => k !== 'route-del'),
    ['fdb-replace', 'neigh-replace'],
  );
});

test('afterApply: the model holds what succeeded; a partial failure leaves the failed object to redo', () => {
  const want = plan(vxlanPeer(2), vxlanPeer(4), vxlanPeer(5));
  const before = recorded(rec.ROUTES_87);
  const d = diff(want, before, 'weft.1');
  const ops = d.ops.map((p) => p.op);
  const failedRoute = ops.findIndex((o) => o.op === 'route-replace' && o.dst === '10.244.5.0/24');
  const failures: OpFailure[] = [
    {
      index: failedRoute,
      op: ops[failedRoute]!,
      command: 'ip route replace …',
      message: 'Nexthop has invalid gateway.',
    },
  ];
  const after = afterApply(before, 'weft.1', ops, failures);
  // Everything but the failed route is now in the model: the next diff redoes exactly that route.
  assert.deepEqual(lines(diff(want, after, 'weft.1')), [
    'ip route replace 10.244.5.0/24 via 10.244.5.0 dev weft.1 onlink proto 87',
  ]);
  const clean = afterApply(before, 'weft.1', ops, []);
  assert.deepEqual(lines(diff(want, clean, 'weft.1')), []);
  assert.ok(
    clean.neighs.some((n) => n.dst === '10.244.9.0'),
    'the foreign neighbour stays in the model',
  );
});

test('agrees: the echo of weft’s own changes and foreign objects agree; a hand-made change does not', () => {
  const model = owned(recorded());
  const ev = (line: string, src: 'ip' | 'bridge' = 'ip') => parseMonitorLine(line, src) as KernelEvent;
  // Echoes of the model's own objects, and events about objects weft does not own.
  for (const l of [
    '[ROUTE]10.244.2.0/24 via 10.244.2.0 dev weft.1 proto 87 onlink ',
    '[NEIGH]10.244.3.0 dev weft.1 lladdr 02:bb:00:00:00:03 PERMANENT ',
    '[ROUTE]10.99.0.0/16 via 198.18.0.1 dev eth0 proto static ',
    '[ROUTE]local 10.244.1.0 dev weft.1 table local proto kernel scope host src 10.244.1.0 ',
    '[NEIGH]198.18.0.77 dev eth0 lladdr 02:00:00:00:00:77 PERMANENT ',
    '[NEIGH]10.244.9.0 dev weft.1 lladdr 02:cc:00:00:00:09 STALE ',
    '[LINK]9: veth1234@if2: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1450 qdisc noqueue master cni0',
  ])
    assert.ok(agrees(model, ev(l)), l);
  assert.ok(agrees(model, ev('02:bb:00:00:00:02 dev weft.1 dst 198.18.0.12 self permanent', 'bridge')));
  assert.ok(agrees(model, ev('00:00:00:00:00:00 dev weft.1 dst 198.18.0.77 self permanent', 'bridge')));
  // Changes that make the kernel differ from the model.
  for (const l of [
    '[ROUTE]Deleted 10.244.3.0/24 via 10.244.3.0 dev weft.1 proto 87 onlink ',
    '[ROUTE]10.244.2.0/24 via 198.18.0.12 dev eth0 proto static ',
    '[ROUTE]10.244.7.0/24 via 10.244.7.0 dev weft.1 proto 87 onlink ',
    '[NEIGH]Deleted 10.244.3.0 dev weft.1 FAILED ',
    '[LINK]4: weft.1: <BROADCAST,MULTICAST> mtu 1450 qdisc noqueue state DOWN group default',
  ])
    assert.ok(!agrees(model, ev(l)), l);
  assert.ok(
    !agrees(model, ev('Deleted 02:bb:00:00:00:03 dev weft.1 dst 198.18.0.13 self permanent', 'bridge')),
  );
  assert.ok(!agrees(model, { kind: 'lost', why: rec.MONITOR_OVERFLOW }));
  // After weft itself removed n3, the echo of that removal agrees.
  const d = diff(plan(vxlanPeer(2)), recorded(), 'weft.1');
  const gone = owned(
    afterApply(
      recorded(),
      'weft.1',
      d.ops.map((p) => p.op),
      [],
    ),
  );
  assert.ok(agrees(gone, ev('[ROUTE]Deleted 10.244.3.0/24 via 10.244.3.0 dev weft.1 proto 87 onlink ')));
  assert.ok(
    agrees(gone, ev('Deleted 02:bb:00:00:00:03 dev weft.1 dst 198.18.0.13 self permanent', 'bridge')),
  );
  assert.equal(WEFT_ROUTE_PROTO, 87);
});

test('a device route (udp: the cluster network into the TUN device) is diffed, modelled and echoed without a next hop', () => {
  const udp: Plan = {
    routes: [{ dst: Cidr.parse('10.244.0.0/16')!, dev: 'weft.udp', onlink: false }],
    vteps: [],
    peers: [],
  };
  const empty: Observed = { routes: [], vxlanDev: undefined, neighs: [], fdb: [] };
  const d = diff(udp, empty, undefined);
  assert.deepEqual(lines(d), ['ip route replace 10.244.0.0/16 dev weft.udp proto 87']);
  // As `ip -j route show proto 87` lists it (recorded: a TUN device without a queue is "linkdown").
  const listed = ownRoutesListing([
    { dst: '10.244.0.0/16', dev: 'weft.udp', scope: 'link', flags: ['linkdown'] },
  ]);
  const have: Observed = { ...empty, routes: listed };
  assert.deepEqual(lines(diff(udp, have, undefined)), []);
  assert.equal(diff(udp, have, undefined).unchanged, 1);
  // The same destination with a next hop (the vxlan backend's, say) is not the same route.
  const via: Observed = {
    ...empty,
    routes: ownRoutesListing([
      { dst: '10.244.0.0/16', gateway: '10.244.2.0', dev: 'weft.1', flags: ['onlink'] },
    ]),
  };
  assert.deepEqual(lines(diff(udp, via, undefined)), [
    'ip route replace 10.244.0.0/16 dev weft.udp proto 87',
  ]);
  // The model after the Op agrees with the kernel's echo of it, not with someone moving the route.
  const model = owned(
    afterApply(
      empty,
      undefined,
      d.ops.map((p) => p.op),
      [],
    ),
  );
  const ev = (line: string) => parseMonitorLine(line, 'ip') as KernelEvent;
  assert.ok(agrees(model, ev('[ROUTE]10.244.0.0/16 dev weft.udp proto 87 scope link linkdown ')));
  assert.ok(!agrees(model, ev('[ROUTE]Deleted 10.244.0.0/16 dev weft.udp proto 87 scope link linkdown ')));
  assert.ok(!agrees(model, ev('[ROUTE]10.244.0.0/16 via 198.18.0.1 dev eth0 proto 87 ')));
  assert.ok(!agrees(model, ev('[LINK]7: weft.udp: <POINTOPOINT,MULTICAST,NOARP> mtu 1472 state DOWN')));
});
