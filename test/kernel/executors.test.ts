import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { isBusy, isNotFound, isUnreachable } from '../../src/kernel/errors.js';
import { Q, query } from '../../src/kernel/iproute.js';
import { iproute2, kernelOps, whyNotNetlink, type OpExecutor } from '../../src/kernel/kernel.js';
import { addNetns, deleteNetns } from '../../src/kernel/netns.js';
import type { Op } from '../../src/kernel/ops.js';
import { uniqueName } from '../helpers/lab.js';

/**
 * The kernel layer's two implementations of Ops — netlink in this process and iproute2 processes —
 * leave the same kernel behind and fail on the same Ops with the same kind of answer. Everything
 * happens in two scratch namespaces per implementation (node and pod), removed afterwards.
 */

async function scratch(t: TestContext, tag: string): Promise<{ node: string; pod: string }> {
  const id = uniqueName('wk');
  const ns = { node: `${id}-${tag}n`, pod: `${id}-${tag}p` };
  t.after(() => deleteNetns([ns.node, ns.pod]));
  await addNetns([ns.node, ns.pod]);
  return ns;
}

/** A CNI-style pod attachment and an agent-style VXLAN node, with three Ops that must fail. */
function nodeOps(pod: string): Op[] {
  return [
    { op: 'link-add-veth', name: 'eth0', peer: { name: 'eth1' } },
    { op: 'addr-add', dev: 'eth0', cidr: '198.18.0.11/24' },
    { op: 'link-set', name: 'eth0', up: true },
    { op: 'link-set', name: 'eth1', up: true },
    { op: 'link-add-bridge', name: 'cni0', mtu: 1400, address: '0a:58:0a:f4:01:01' },
    { op: 'addr-replace', dev: 'cni0', cidr: '10.244.1.1/24', broadcast: true },
    { op: 'link-set', name: 'cni0', up: true },
    {
      op: 'link-add-veth',
      name: 'veth1',
      mtu: 1400,
      address: '0e:58:0a:f4:01:05',
      peer: { name: 'eth0', mtu: 1400, address: '0a:58:0a:f4:01:05', netns: `/run/netns/${pod}` },
    },
    { op: 'link-set', name: 'veth1', master: 'cni0' },
    { op: 'link-set', name: 'veth1', hairpin: true },
    { op: 'link-set', name: 'veth1', up: true },
    {
      op: 'link-add-vxlan',
      name: 'weft.1',
      address: '02:aa:00:00:00:01',
      mtu: 1350,
      vni: 1,
      local: '198.18.0.11',
      dev: 'eth0',
      port: 8472,
    },
    { op: 'link-set', name: 'weft.1', noIpv6LinkLocal: true },
    { op: 'addr-add', dev: 'weft.1', cidr: '10.244.1.0/32' },
    { op: 'link-set', name: 'weft.1', up: true },
    { op: 'fdb-replace', mac: '02:bb:00:00:00:02', dev: 'weft.1', dst: '198.18.0.12' },
    { op: 'neigh-replace', ip: '10.244.2.0', lladdr: '02:bb:00:00:00:02', dev: 'weft.1' },
    { op: 'route-replace', dst: '10.244.2.0/24', via: '10.244.2.0', dev: 'weft.1', onlink: true, proto: 87 },
    { op: 'route-replace', dst: '10.244.3.0/24', via: '198.18.0.13', dev: 'eth0', proto: 87 },
    { op: 'route-replace', dst: '10.244.4.0/24', via: '10.9.9.9', dev: 'eth0', proto: 87 }, // 19: unreachable
    { op: 'neigh-del', ip: '10.244.7.0', dev: 'weft.1' }, // 20: no such neighbour
    { op: 'fdb-del', mac: '02:bb:00:00:00:09', dev: 'weft.1', dst: '198.18.0.19' }, // 21: no such entry
    { op: 'route-del', dst: '10.244.3.0/24', via: '198.18.0.13', dev: 'eth0', proto: 87 },
    { op: 'route-replace', dst: '10.244.5.0/24', via: '198.18.0.15', dev: 'eth0', proto: 87 },
    // The udp backend's TUN device (iproute2 makes it for both: rtnetlink cannot) and its device route.
    { op: 'link-add-tun', name: 'weft.udp', multiQueue: true, vnetHdr: true },
    { op: 'link-set', name: 'weft.udp', noIpv6LinkLocal: true, mtu: 1472 },
    { op: 'addr-add', dev: 'weft.udp', cidr: '10.244.1.0/32' },
    { op: 'link-set', name: 'weft.udp', up: true },
    { op: 'route-replace', dst: '10.244.0.0/16', dev: 'weft.udp', proto: 87 },
    { op: 'link-add-tun', name: 'weft.udp', multiQueue: true }, // 29: the name is taken
    // The neutron backend's probe address: on the loopback, labelled as weft's (kernel/probe.ts).
    { op: 'addr-add', dev: 'lo', cidr: '10.244.1.0/32', label: 'lo:weft' },
  ];
}

const podOps: Op[] = [
  { op: 'addr-add', dev: 'eth0', cidr: '10.244.1.5/24', broadcast: true },
  { op: 'link-set', name: 'eth0', up: true },
  { op: 'route-append', dst: '10.244.0.0/16', via: '10.244.1.1', dev: 'eth0' },
  { op: 'route-append', dst: 'default', via: '10.244.1.1', dev: 'eth0' },
];

/** What a user would compare with `ip -d addr`, `ip route`, `ip neigh`, `bridge fdb` (no ifindexes). */
async function view(ns: { node: string; pod: string }) {
  const links = async (n: string) =>
    (await query(Q.addrs(), n))
      .map((l) => ({
        name: l.ifname,
        mtu: l.mtu,
        up: l.flags.includes('UP'),
        master: l.master,
        addrs: l.addr_info
          .filter((a) => a.family === 'inet')
          .map((a) => `${a.local}/${a.prefixlen} ${a.broadcast ?? ''} ${a.label ?? ''}`),
        v6: l.addr_info.some((a) => a.family === 'inet6'),
      }))
      .sort((a, b) => a.name.localeCompare(b.name));
  const kinds = async (n: string) =>
    Object.fromEntries(
      (await query(Q.links(), n)).map((l) => [
        l.ifname,
        [l.linkinfo?.info_kind, l.linkinfo?.info_slave_data?.hairpin],
      ]),
    );
  const vx = await query(Q.link('weft.1'), ns.node);
  const tun = await query(Q.link('weft.udp'), ns.node);
  return {
    node: await links(ns.node),
    pod: await links(ns.pod),
    kinds: await kinds(ns.node),
    vxlan: vx?.linkinfo?.info_data && {
      id: vx.linkinfo.info_data.id,
      local: vx.linkinfo.info_data.local,
      link: vx.linkinfo.info_data.link,
      port: vx.linkinfo.info_data.port,
      learning: vx.linkinfo.info_data.learning,
      address: vx.address,
    },
    tun: tun?.linkinfo?.info_data && {
      type: tun.linkinfo.info_data.type,
      pi: tun.linkinfo.info_data.pi,
      vnet_hdr: tun.linkinfo.info_data.vnet_hdr,
      multi_queue: tun.linkinfo.info_data.multi_queue,
      persist: tun.linkinfo.info_data.persist,
    },
    routes: await query(Q.routes(), ns.node),
    podRoutes: await query(Q.routes(), ns.pod),
    neighs: await query(Q.neighs('weft.1'), ns.node),
    fdb: await query(Q.fdb('weft.1'), ns.node),
  };
}

async function build(t: TestContext, k: OpExecutor, tag: string) {
  const ns = await scratch(t, tag);
  const failures = await k.execute(nodeOps(ns.pod), { netns: ns.node });
  const podFailures = await k.execute(podOps, { netns: `/run/netns/${ns.pod}`, stopOnFailure: true });
  return { failures, podFailures, view: await view(ns) };
}

test('netlink and iproute2 build the same node and pod, and fail on the same Ops for the same reasons', async (t) => {
  const nl = kernelOps();
  assert.equal(nl.name, 'netlink', `the netlink addon is built (npm run build): ${whyNotNetlink() ?? ''}`);
  const a = await build(t, nl, 'a');
  const b = await build(t, iproute2, 'b');
  assert.deepEqual(a.view, b.view);
  assert.deepEqual(a.podFailures, []);
  assert.deepEqual(b.podFailures, []);
  for (const r of [a, b]) {
    assert.deepEqual(
      r.failures.map((f) => f.index),
      [19, 20, 21, 29],
      r.failures.map((f) => `${f.index} ${f.message}`).join('; '),
    );
    assert.ok(isUnreachable(r.failures[0]!), r.failures[0]!.message);
    assert.ok(isNotFound(r.failures[1]!) && isNotFound(r.failures[2]!));
    assert.ok(isBusy(r.failures[3]!), r.failures[3]!.message);
    assert.equal(r.failures[3]!.command, 'ip tuntap add dev weft.udp mode tun multi_queue');
    assert.equal(r.failures[0]!.command, 'ip route replace 10.244.4.0/24 via 10.9.9.9 dev eth0 proto 87');
  }
  // What the Ops were for: the pod end in its namespace with its address and routes, the host end
  // on the bridge in hairpin mode, the tunnel without an IPv6 address, the routes after the failures.
  assert.deepEqual(
    a.view.pod.find((l) => l.name === 'eth0'),
    {
      name: 'eth0',
      mtu: 1400,
      up: true,
      master: undefined,
      addrs: ['10.244.1.5/24 10.244.1.255 eth0'],
      v6: true,
    },
  );
  assert.deepEqual(a.view.node.find((l) => l.name === 'lo')?.addrs, ['10.244.1.0/32  lo:weft']);
  assert.deepEqual(a.view.kinds.veth1, ['veth', true]);
  assert.equal(a.view.node.find((l) => l.name === 'weft.1')?.v6, false);
  assert.deepEqual(
    a.view.routes.filter((r) => r.protocol === '87').map((r) => `${r.dst} ${r.gateway} ${r.dev}`),
    ['10.244.0.0/16 undefined weft.udp', '10.244.2.0/24 10.244.2.0 weft.1', '10.244.5.0/24 198.18.0.15 eth0'],
  );
  assert.deepEqual(a.view.tun, { type: 'tun', pi: false, vnet_hdr: true, multi_queue: true, persist: true });
  assert.equal(a.view.node.find((l) => l.name === 'weft.udp')?.mtu, 1472);
  assert.deepEqual(a.view.vxlan, {
    id: 1,
    local: '198.18.0.11',
    link: 'eth0',
    port: 8472,
    learning: false,
    address: '02:aa:00:00:00:01',
  });
});

test('stopping at the first failure: the Ops after it are not carried out, by either implementation', async (t) => {
  for (const [k, tag] of [
    [kernelOps(), 'c'],
    [iproute2, 'd'],
  ] as const) {
    const ns = await scratch(t, tag);
    const fs = await k.execute(
      [
        { op: 'link-add-bridge', name: 'br0' },
        { op: 'link-set', name: 'nope0', up: true },
        { op: 'link-set', name: 'br0', up: true },
      ],
      { netns: ns.node, stopOnFailure: true },
    );
    assert.deepEqual(
      fs.map((f) => f.index),
      [1],
      k.name,
    );
    assert.ok(isNotFound(fs[0]!), `${k.name}: ${fs[0]!.message}`);
    assert.equal(
      (await query(Q.link('br0'), ns.node))?.flags.includes('UP'),
      false,
      `${k.name}: br0 stays down`,
    );
  }
});

test('a device renamed, while up and down/rename/up, keeps its MAC, FDB and routes, by either implementation', async (t) => {
  for (const [k, tag] of [
    [kernelOps(), 'e'],
    [iproute2, 'f'],
  ] as const) {
    const ns = await scratch(t, tag);
    await k.execute(nodeOps(ns.pod), { netns: ns.node });
    const live = await k.execute([{ op: 'link-rename', name: 'weft.1', to: 'flannel.1' }], {
      netns: ns.node,
    });
    assert.deepEqual(live, [], `${k.name}: renamed while up`);
    // The older kernels' way, with what going down flushes put back in the same run of Ops.
    const downUp = await k.execute(
      [
        { op: 'link-set', name: 'flannel.1', up: false },
        { op: 'link-rename', name: 'flannel.1', to: 'weft.9' },
        { op: 'link-set', name: 'weft.9', up: true },
        { op: 'neigh-replace', ip: '10.244.2.0', lladdr: '02:bb:00:00:00:02', dev: 'weft.9' },
        {
          op: 'route-replace',
          dst: '10.244.2.0/24',
          via: '10.244.2.0',
          dev: 'weft.9',
          onlink: true,
          proto: 87,
        },
        { op: 'link-rename', name: 'nope0', to: 'nope1' },
      ],
      { netns: ns.node },
    );
    assert.deepEqual(
      downUp.map((f) => f.index),
      [5],
      `${k.name}: ${downUp.map((f) => f.message).join('; ')}`,
    );
    assert.ok(isNotFound(downUp[0]!), `${k.name}: ${downUp[0]!.message}`);
    const link = await query(Q.link('weft.9'), ns.node);
    assert.equal(link?.address, '02:aa:00:00:00:01', `${k.name}: the MAC is kept`);
    assert.ok(link?.flags.includes('UP'), k.name);
    assert.deepEqual(
      (await query(Q.fdb('weft.9'), ns.node)).filter((e) => e.dst).map((e) => `${e.mac} ${e.dst}`),
      ['02:bb:00:00:00:02 198.18.0.12'],
      `${k.name}: the FDB survives`,
    );
    assert.deepEqual(
      (await query(Q.routes(['dev', 'weft.9']), ns.node)).map((r) => `${r.dst} ${r.gateway} ${r.protocol}`),
      ['10.244.2.0/24 10.244.2.0 87'],
      `${k.name}: the route is back`,
    );
  }
});
