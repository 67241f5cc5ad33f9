import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labTrace } from '../../src/trace/run.js';
import type { TraceResult } from '../../src/trace/types.js';
import type { NodeState } from '../../src/lab/lab.js';
import { upLab } from '../helpers/lab.js';
import { assertOrdered, assertTraceClean, assertTunnelled, journey } from './helpers.js';

/**
 * weft trace over the udp backend on a 2-node flat lab: pod to pod across nodes, both ways. The probe
 * leaves the cluster route into the TUN device weft.udp, weft-udp sends it as the payload of a UDP
 * datagram to port 8285 (the tracer opens raw IPv4-in-UDP as one outer layer), and the peer's weft-udp
 * writes it into its own TUN device, from where it is routed to the pod.
 */
test(
  'weft trace over the udp backend: outer UDP 8285 carrying the raw inner IPv4, both ways',
  { timeout: 240_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, underlay: 'flat', backend: 'udp' });
    t.after(down);
    const pod = (n: string) => state.pods.find((p) => p.name === n)!;
    const node = (n: string) => state.nodes.find((x) => x.name === n)!;

    for (const [a, b] of [
      ['n1p1', 'n2p1'],
      ['n2p1', 'n1p1'],
    ] as const) {
      await t.test(
        `udp: ${a} → ${b}, through weft.udp on both nodes, UDP 8285 between their addresses`,
        async () => {
          const tr: TraceResult = await labTrace(state.name, a, b);
          assert.equal(tr.summary.verdict, 'delivered', `${tr.summary.why}\n${journey(tr, 'request')}`);
          assertOrdered(tr.hops);
          const ends = [node(pod(a).node), node(pod(b).node)] as const;
          const udp = (src: NodeState, dst: NodeState) =>
            ({ src: src.publicIP, dst: dst.publicIP, udpPort: 8285, kind: 'udp', owner: 'weft' }) as const;
          for (const { dir, src, dst, hops, iEnc } of assertTunnelled(tr, state, [...ends], udp)) {
            // Into the sender's TUN device before, out of the receiver's after: the inner packet alone.
            const intoTun = hops.findIndex((h) => h.netns === src.netns && h.device === 'weft.udp');
            const outOfTun = hops.findIndex((h) => h.netns === dst.netns && h.device === 'weft.udp');
            assert.ok(
              intoTun >= 0 && intoTun < iEnc,
              `${dir} enters weft.udp on ${src.name}: ${journey(tr, dir)}`,
            );
            assert.ok(outOfTun > iEnc, `${dir} leaves weft.udp on ${dst.name}: ${journey(tr, dir)}`);
            assert.equal(hops[intoTun]!.outer.length, 0);
            assert.deepEqual([hops[outOfTun]!.outer.length, hops[outOfTun]!.event], [0, 'decapsulated']);
          }
          assert.deepEqual(
            tr.summary.dataPath.map((d) => d.path),
            ['udp', 'udp'],
          );
          assert.equal(tr.summary.pathMtu, 1472);
          await assertTraceClean(state, tr);
        },
      );
    }
  },
);
