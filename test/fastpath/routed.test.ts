import { test } from 'node:test';
import assert from 'node:assert/strict';
import { allPairsFailures, tcpTransfer, upLab } from '../helpers/lab.js';
import { kernelCounters, loaderStatus } from './helpers.js';

const MiB = 1024 * 1024;

/**
 * `auto` on a routed underlay with the fast path: n1 and n3 share 198.18.0.0/24 (a direct route, so
 * bpf_redirect_neigh to the peer node), n2 sits behind the lab router (VXLAN, so into weft.1).
 */
test(
  'BPF fast path with auto on a routed underlay: direct and VXLAN peers side by side',
  { timeout: 180_000 },
  async (t) => {
    const { state, down } = await upLab({
      nodes: 3,
      podsPerNode: 1,
      underlay: 'routed',
      backend: 'auto',
      fastPath: 'bpf',
    });
    t.after(down);
    const node = (n: string) => state.nodes.find((x) => x.name === n)!;
    const pod = (n: string) => state.pods.find((p) => p.node === n)!;
    const n1 = node('n1');

    await t.test(
      'the program is on the pod veth, weft.1 and the underlay (a direct peer arrives there)',
      async () => {
        const st = await loaderStatus(n1);
        assert.deepEqual(Object.keys(st.attached).sort(), ['eth0', pod('n1').hostVeth!, 'weft.1'].sort());
        assert.equal(st.peers, 2);
      },
    );

    await t.test(
      'every pod reaches every pod; the direct peer is routed, the far one encapsulated',
      async () => {
        const before = await kernelCounters(n1);
        assert.deepEqual(await allPairsFailures(state), []);
        const after = await kernelCounters(n1);
        assert.ok(after.fast_routed! > before.fast_routed!, 'n1 → n3 by bpf_redirect_neigh');
        assert.ok(after.fast_vxlan! > before.fast_vxlan!, 'n1 → n2 encapsulated by the program');
        assert.ok(
          after.fast_in! > before.fast_in!,
          'the direct peer’s replies delivered by bpf_redirect_peer',
        );
        assert.ok(
          after.fast_decap! > before.fast_decap!,
          'the far peer’s replies decapsulated, then delivered',
        );
      },
    );

    await t.test('10 MiB over each kind of peer arrive intact', async () => {
      assert.equal(await tcpTransfer(pod('n1').netns, pod('n3').netns, pod('n3').ip, 10 * MiB), 10 * MiB);
      assert.equal(
        await tcpTransfer(pod('n1').netns, pod('n2').netns, pod('n2').ip, 10 * MiB, 5203),
        10 * MiB,
      );
    });
  },
);
