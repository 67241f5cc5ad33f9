import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labAddNode, labRestartAgent, readState, type NodeState } from '../../src/lab/lab.js';
import { allPairsFailures, eventually, inNs, upLab } from '../helpers/lab.js';
import {
  attachFlannelPod,
  flanneldStart,
  listLeases,
  programFlannelPeers,
  startWeft,
  type FlannelBackend,
} from './flannel-node.js';

/**
 * Issue 14, a rolling migration half done: two Flannel-style nodes and weft nodes in one cluster, over
 * vxlan and over host-gw. All pods reach all pods; weft never deletes or rewrites a Flannel node's lease
 * (not when its agent restarts, not when a weft node joins); over host-gw a Flannel node is taken over too.
 */
for (const backend of ['vxlan', 'host-gw'] as FlannelBackend[]) {
  test(`mixed cluster over ${backend}: Flannel nodes and weft nodes`, { timeout: 240_000 }, async (t) => {
    const lab = await upLab({ nodes: 1, podsPerNode: 1, backend });
    t.after(lab.down);
    const name = lab.state.name;
    await labAddNode(name, { agent: false });
    await labAddNode(name, { agent: false });
    const s = await readState(name);
    const flannel = s.nodes.slice(1) as [NodeState, NodeState];
    const subnets: string[] = [];
    for (const n of flannel) subnets.push((await flanneldStart(s, n, backend)).subnet);
    for (const n of flannel) await programFlannelPeers(s, n, backend);
    for (const [i, n] of flannel.entries()) await attachFlannelPod(s, n, `${n.name}f1`, subnets[i]!);
    const flannelLeases = async () =>
      (await listLeases(s))
        .filter((l) => flannel.some((n) => n.publicIP === l.value.PublicIP))
        .map((l) => `${l.key} rev ${l.modRevision}`)
        .sort();
    const before = await flannelLeases();
    assert.equal(before.length, 2);

    const allReach = async (what: string) => {
      const failures: string[] = [];
      const ok = await eventually(async () => {
        const st = await readState(name);
        failures.splice(0, failures.length, ...(await allPairsFailures(st)));
        return failures.length === 0;
      }, 20_000);
      assert.ok(ok, `${what}: ${failures.join(' ')}`);
    };
    await allReach('1 weft node + 2 Flannel nodes');

    await labRestartAgent(name, 'n1', { signal: 'SIGTERM' });
    await allReach('after the weft agent restarted');
    const joined = await labAddNode(name, { pods: 1 });
    for (const n of flannel) await programFlannelPeers(s, n, backend); // flanneld's watch sees n4
    await allReach(`after weft node ${joined.name} joined`);
    assert.deepEqual(await flannelLeases(), before, "no Flannel node's lease was deleted or rewritten");

    if (backend === 'host-gw') {
      const n2 = flannel[0];
      const st = await readState(name);
      const node = st.nodes.find((n) => n.name === n2.name)!;
      await startWeft(st, node, ['--take-over-flannel']);
      await allReach('after the host-gw takeover of n2');
      const routes = await inNs(node.netns, ['ip', 'route']);
      const peerRoutes = routes.stdout
        .split('\n')
        .filter((l) => l.startsWith('10.244.') && l.includes(' via '));
      assert.equal(peerRoutes.length, 3, `a route to n1, n3 and n4:\n${routes.stdout}`);
      for (const r of peerRoutes)
        assert.match(r, /proto 87/, `every peer route is weft's now:\n${routes.stdout}`);
      assert.doesNotMatch((await inNs(node.netns, ['iptables-nft-save'])).stdout, /FLANNEL/);
      const other = (await flannelLeases()).filter((l) => !l.includes(subnets[0]!.replace('/', '-')));
      assert.deepEqual(
        other,
        before.filter((l) => !l.includes(subnets[0]!.replace('/', '-'))),
        "n3's lease untouched",
      );
    }
  });
}
