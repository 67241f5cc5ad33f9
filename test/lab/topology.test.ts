import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateSpec } from '../../src/lab/spec.js';
import { nextNodeIndex, nodeJoinBatches, nodePlan, underlayPlan } from '../../src/lab/topology.js';

/** The underlay plans are data: what a lab is made of can be read without building it. */
test('a flat plan: one segment, every namespace named after the lab, each node cabled to br0', () => {
  const p = underlayPlan(validateSpec({ name: 'tp', nodes: 3, underlay: 'flat' }));
  assert.deepEqual(p.namespaces, [
    'wl-tp-sw',
    'wl-tp-gw',
    'wl-tp-ext',
    'wl-tp-etcd',
    'wl-tp-n1',
    'wl-tp-n2',
    'wl-tp-n3',
  ]);
  assert.deepEqual(
    p.nodes.map((n) => `${n.name} ${n.publicIP} ${n.underlaySubnet}`),
    ['n1 198.18.0.11 198.18.0.0/24', 'n2 198.18.0.12 198.18.0.0/24', 'n3 198.18.0.13 198.18.0.0/24'],
  );
  assert.equal(p.outside.netns, undefined, 'namespaces and cables are made from outside');
  assert.ok(p.outside.lines.includes('netns add wl-tp-n3'));
  assert.ok(
    p.outside.lines.includes(
      'link add eth0 netns wl-tp-n2 mtu 1500 type veth peer name n2 netns wl-tp-sw mtu 1500',
    ),
  );
  const sw = p.inside.find((b) => b.netns === 'wl-tp-sw')!;
  assert.ok(sw.lines.includes('link set n3 master br0'));
  assert.ok(!sw.lines.some((l) => l.includes('br1')), 'no second segment');
  const n1 = p.inside.find((b) => b.netns === 'wl-tp-n1')!;
  assert.deepEqual(n1.lines, [
    'link set lo up',
    'addr add 198.18.0.11/24 dev eth0',
    'link set eth0 up',
    'route add default via 198.18.0.1',
  ]);
  assert.ok(p.outside.lines.concat(...p.inside.map((b) => b.lines)).every((l) => !l.includes('192.0.2.')));
});

test('a routed plan: two segments behind the gateway, nodes alternating between them', () => {
  const p = underlayPlan(validateSpec({ name: 'tp', nodes: 4, underlay: 'routed', mtu: 9000 }));
  assert.deepEqual(
    p.nodes.map((n) => n.publicIP),
    ['198.18.0.11', '198.18.1.12', '198.18.0.13', '198.18.1.14'],
  );
  const sw = p.inside.find((b) => b.netns === 'wl-tp-sw')!;
  assert.ok(sw.lines.includes('link add br1 mtu 9000 type bridge'));
  assert.ok(sw.lines.includes('link set n2 master br1') && sw.lines.includes('link set n3 master br0'));
  const gw = p.inside.find((b) => b.netns === 'wl-tp-gw')!;
  assert.ok(
    gw.lines.includes('addr add 198.18.0.1/24 dev eth0') &&
      gw.lines.includes('addr add 198.18.1.1/24 dev eth1'),
  );
  assert.deepEqual(p.sysctls.find((s) => s.netns === 'wl-tp-gw')?.settings, { 'net.ipv4.ip_forward': '1' });
  const n2 = p.inside.find((b) => b.netns === 'wl-tp-n2')!;
  assert.ok(n2.lines.includes('route add default via 198.18.1.1'));
});

test('a node joining later gets the next unused name and address, never a removed one', () => {
  assert.equal(nextNodeIndex([{ name: 'n1' }, { name: 'n2' }, { name: 'n3' }]), 3);
  assert.equal(nextNodeIndex([{ name: 'n1' }, { name: 'n3' }]), 3, 'after n2 was removed, n4 is next');
  assert.equal(nextNodeIndex([]), 0);
  const spec = validateSpec({ name: 'tp', nodes: 3 });
  const x = nodePlan(spec, 3);
  assert.deepEqual(x, {
    name: 'n4',
    netns: 'wl-tp-n4',
    publicIP: '198.18.0.14',
    underlaySubnet: '198.18.0.0/24',
  });
  const [outside, port, host] = nodeJoinBatches(spec, x, 'wl-tp-sw');
  assert.deepEqual(outside!.lines[0], 'netns add wl-tp-n4');
  assert.deepEqual(port, {
    netns: 'wl-tp-sw',
    lines: ['link set n4 master br0', 'link set n4 up'],
    what: 'cannot plug node n4',
  });
  assert.equal(host!.netns, 'wl-tp-n4');
});
