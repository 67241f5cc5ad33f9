import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labSwitchBackend } from '../../src/lab/lab.js';
import { labTrace } from '../../src/trace/run.js';
import { upLab } from '../helpers/lab.js';
import { assertOrdered, assertTraceClean, hopsIn, journey } from './helpers.js';

/**
 * A routed underlay (n1, n3 on 198.18.0.0/24; n2 on 198.18.1.0/24 behind the lab router): host-gw
 * cannot reach the off-link peer, and the trace shows where the probe dies (the router, no route to
 * the pod network) and why (the agent gave that peer no path); over vxlan the same probe crosses the
 * router inside UDP 8472.
 */
test(
  'weft trace on a routed underlay: host-gw to an off-link peer is dropped at the router; vxlan crosses it',
  { timeout: 300_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 3, podsPerNode: 1, underlay: 'routed', backend: 'host-gw' });
    t.after(down);
    const pod = (n: string) => state.pods.find((p) => p.node === n)!;

    await t.test(
      'host-gw, n1p1 → n2p1: dropped at the router with the kernel reason, the agent says why',
      async () => {
        const tr = await labTrace(state.name, pod('n1').name, pod('n2').name);
        assert.equal(tr.summary.verdict, 'dropped', tr.summary.why);
        assertOrdered(tr.hops);
        const drop = tr.hops.find((h) => h.event === 'dropped')!;
        assert.equal(drop.netns, state.gateway.netns, journey(tr, 'request'));
        assert.equal(drop.host, 'router');
        assert.match(drop.drop!.reason, /NO_ROUTE|INNOROUTES/);
        assert.equal(tr.summary.dataPath[0]?.path, 'unreachable');
        assert.match(tr.summary.why, /not on-link/);
        assert.equal(hopsIn(tr, 'reply').length, 0);
        await assertTraceClean(state, tr);
      },
    );

    await t.test('host-gw, n1p1 → n3p1 on the same segment: delivered, no outer header', async () => {
      const tr = await labTrace(state.name, pod('n1').name, pod('n3').name);
      assert.equal(tr.summary.verdict, 'delivered', tr.summary.why);
      assert.ok(tr.hops.every((h) => h.outer.length === 0));
      await assertTraceClean(state, tr);
    });

    await t.test('vxlan, n1p1 → n2p1: through the router inside UDP 8472 VNI 1', async () => {
      await labSwitchBackend(state.name, 'vxlan');
      const tr = await labTrace(state.name, pod('n1').name, pod('n2').name);
      assert.equal(tr.summary.verdict, 'delivered', tr.summary.why);
      for (const dir of ['request', 'reply'] as const) {
        const atRouter = hopsIn(tr, dir).filter((h) => h.netns === state.gateway.netns);
        assert.ok(atRouter.length >= 2, `${dir} crosses the router: ${journey(tr, dir)}`);
        assert.ok(
          atRouter.every(
            (h) => h.outer.length === 1 && h.outer[0]!.udpPort === 8472 && h.outer[0]!.vni === 1,
          ),
        );
        // the router forwards the outer packet: its TTL drops by one there
        assert.equal(atRouter[0]!.outer.length, 1);
      }
      await assertTraceClean(state, tr);
    });
  },
);
