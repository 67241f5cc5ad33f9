import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readSubnetEnv } from '../../src/config/subnet-env.js';
import type { NodeState } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import { allPairsFailures, eventually, inNs, tcpTransfer, upLab } from '../helpers/lab.js';

test(
  'routed lab on udp: pods reach each other across the router; a narrower router link is found by PMTU discovery',
  { timeout: 180_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 3, podsPerNode: 1, underlay: 'routed', backend: 'udp' });
    t.after(down);
    const [n1, n2] = state.nodes as [NodeState, NodeState, NodeState];
    const [a, b] = [n1, n2].map((n) => state.pods.find((p) => p.node === n.name)!) as [
      (typeof state.pods)[0],
      (typeof state.pods)[0],
    ];
    assert.notEqual(n1.underlaySubnet, n2.underlaySubnet, 'n1 and n2 sit on different subnets');

    await t.test('every pod reaches every other pod (UDP crosses the router, unlike host-gw)', async () => {
      assert.deepEqual(await allPairsFailures(state), []);
    });

    await t.test(
      'router link to n2 lowered to 1400: a DF packet too big for it is answered with fragmentation needed, mtu 1372',
      async () => {
        await run('ip', ['-n', state.gateway.netns, 'link', 'set', 'eth1', 'mtu', '1400']);
        const tunnel1 = (await readSubnetEnv(join(n1.dir, 'subnet.env'))).subnet
          .toString()
          .replace(/\/24$/, '');
        // The first such packet teaches weft-udp the path (ICMP from the router); the next is refused
        // with an ICMP error from n1's tunnel address, which the pod's kernel then remembers.
        const frag = new RegExp(
          `From ${tunnel1.replace(/\./g, '\\.')} .*Frag needed and DF set \\(mtu = 1372\\)`,
        );
        assert.ok(
          await eventually(async () => {
            const r = await inNs(a.netns, ['ping', '-c', '1', '-W', '1', '-M', 'do', '-s', '1400', b.ip]);
            return frag.test(r.stdout) || /message too long, mtu=1372/.test(r.stderr);
          }),
          'the pod learned the path MTU 1372',
        );
        const bytes = 10 * 1024 * 1024;
        assert.equal(
          await tcpTransfer(a.netns, b.netns, b.ip, bytes),
          bytes,
          'TCP adapts and delivers every byte',
        );
        assert.equal(await tcpTransfer(b.netns, a.netns, a.ip, bytes, 5203), bytes, 'and the other way');
      },
    );
  },
);
