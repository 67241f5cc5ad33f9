// weft-test: exclusive neutron-dataplane (its hypervisor namespaces exist once per machine)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labSwitchBackend } from '../../src/lab/lab.js';
import { labTrace } from '../../src/trace/run.js';
import { neutronInUse } from '../../src/lab/neutron-underlay.js';
import { describeError } from '../../src/util/errors.js';
import { upLab } from '../helpers/lab.js';
import { assertOrdered, assertTraceClean, hopsIn, journey } from './helpers.js';

/** One Neutron fixture per machine: wait while another test (test/neutron) has it. */
async function upNeutronLab() {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    while ((await neutronInUse()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5000));
    try {
      return await upLab({ nodes: 3, podsPerNode: 1, underlay: 'neutron', backend: 'vxlan' });
    } catch (e) {
      if (!/already running/.test(describeError(e)) || Date.now() > deadline) throw e;
    }
  }
}

/**
 * On real Neutron (3 node VMs over 2 hypervisors; n1 on nhost1 and n3 on nhost2 share a subnet): over
 * vxlan the probe travels in weft's VXLAN inside Neutron's between the hypervisors, through their tap,
 * bridge and VXLAN devices; over host-gw Neutron's port security drops it at the first hypervisor,
 * and the trace names the chain.
 */
test(
  'weft trace on a Neutron underlay: both encapsulations with vxlan; port security drops host-gw',
  { timeout: 1_800_000 },
  async (t) => {
    const { state, down } = await upNeutronLab();
    t.after(down);
    const pod = (n: string) => state.pods.find((p) => p.node === n)!;
    const node = (n: string) => state.nodes.find((x) => x.name === n)!;

    await t.test(
      'vxlan, n1p1 → n3p1: weft’s VXLAN inside Neutron’s between the hypervisors, both ways',
      async () => {
        const tr = await labTrace(state.name, pod('n1').name, pod('n3').name);
        assert.equal(tr.summary.verdict, 'delivered', tr.summary.why);
        assertOrdered(tr.hops);
        for (const [dir, a, b] of [
          ['request', 'n1', 'n3'],
          ['reply', 'n3', 'n1'],
        ] as const) {
          const hops = hopsIn(tr, dir);
          const both = hops.filter((h) => h.outer.length === 2);
          assert.ok(both.length > 0, `${dir}: two encapsulations somewhere: ${journey(tr, dir)}`);
          const [neutron, weft] = both[0]!.outer;
          assert.equal(neutron!.owner, 'neutron');
          assert.equal(neutron!.udpPort, 8472);
          assert.ok(
            neutron!.vni !== undefined && neutron!.vni !== 1,
            `Neutron's segment VNI (${neutron!.vni})`,
          );
          assert.deepEqual(
            [weft!.src, weft!.dst, weft!.vni, weft!.owner],
            [node(a).publicIP, node(b).publicIP, 1, 'weft'],
          );
          assert.ok(
            both.every((h) => h.role === 'neutron' || h.role === 'underlay'),
            'only the hypervisors and fabric see both',
          );
          assert.ok(
            hops.some((h) => h.role === 'neutron' && /^tap/.test(h.device)),
            `through a tap device: ${journey(tr, dir)}`,
          );
          assert.ok(
            hops.some((h) => h.role === 'neutron' && h.event === 'encapsulated'),
            'Neutron encapsulates at a hypervisor',
          );
          assert.ok(
            hops.some((h) => h.role === 'neutron' && h.event === 'decapsulated'),
            'and decapsulates at the other',
          );
        }
        assert.ok(tr.summary.segments.some((s) => s.segment === 'neutron'));
        assert.equal(tr.summary.pathMtu, 1400, tr.summary.mtuNote);
        await assertTraceClean(state, tr);
      },
    );

    await t.test('host-gw, n1p1 → n3p1: dropped by Neutron’s port security at the hypervisor', async () => {
      await labSwitchBackend(state.name, 'host-gw');
      const tr = await labTrace(state.name, pod('n1').name, pod('n3').name);
      assert.equal(tr.summary.verdict, 'dropped', tr.summary.why);
      const drop = tr.hops.find((h) => h.event === 'dropped')!;
      assert.match(drop.netns, /^nhost\d$/, journey(tr, 'request'));
      assert.equal(drop.role, 'neutron');
      assert.equal(drop.drop!.reason, 'NETFILTER_DROP');
      assert.ok(
        drop.netfilter?.some((v) => v.chain.startsWith('neutron-linuxbri-s') && v.verdict === 'drop'),
        JSON.stringify(drop.netfilter),
      );
      assert.match(tr.summary.why, /Neutron port security/);
      assert.ok(
        tr.hops.every((h) => h.outer.length === 0),
        'host-gw: no encapsulation before the drop',
      );
      await assertTraceClean(state, tr);
    });
  },
);
