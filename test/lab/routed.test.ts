import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { agentGet } from '../../src/agent/client.js';
import { labSwitchBackend, readState } from '../../src/lab/lab.js';
import { allPairsFailures, pings, upLab } from '../helpers/lab.js';

interface PeerStatus {
  subnet: string;
  publicIP: string;
  path: string;
  reason?: string;
}

test(
  'routed lab: host-gw reaches its own subnet and names the others unreachable; vxlan reaches all',
  { timeout: 180_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 3, podsPerNode: 1, underlay: 'routed', backend: 'host-gw' });
    t.after(down);
    // n1 and n3 sit on 198.18.0.0/24, n2 on 198.18.1.0/24 behind the lab router.
    const [n1, n2, n3] = state.nodes;
    assert.equal(n1!.underlaySubnet, '198.18.0.0/24');
    assert.equal(n2!.underlaySubnet, '198.18.1.0/24');
    const pod = (node: string) => state.pods.find((p) => p.node === node)!;

    await t.test('host-gw: pods on the same underlay subnet reach each other', async () => {
      assert.ok(await pings(pod('n1').netns, pod('n3').ip, 2));
      assert.ok(await pings(pod('n3').netns, pod('n1').ip, 2));
    });

    await t.test(
      'host-gw: the peer behind the router is reported unreachable by name, and is not reached',
      async () => {
        const st = JSON.parse((await agentGet(join(n1!.dir, 'agent.sock'), '/status')).body) as {
          peers: PeerStatus[];
        };
        const p2 = st.peers.find((p) => p.publicIP === n2!.publicIP);
        assert.equal(p2?.path, 'unreachable');
        assert.match(
          p2?.reason ?? '',
          /not on-link on eth0 \(198\.18\.0\.0\/24\).*host-gw needs every node on one L2 segment/,
        );
        assert.equal(st.peers.find((p) => p.publicIP === n3!.publicIP)?.path, 'direct');
        const metrics = (await agentGet(join(n1!.dir, 'agent.sock'), '/metrics')).body;
        assert.match(metrics, /weft_peers\{path="unreachable"\} 1/);
        assert.equal(await pings(pod('n1').netns, pod('n2').ip), false);
      },
    );

    await t.test('vxlan: every pod reaches every other pod across the router', async () => {
      await labSwitchBackend(state.name, 'vxlan');
      assert.deepEqual(await allPairsFailures(await readState(state.name)), []);
    });
    void n3;
  },
);
