import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentRequest } from '../../src/agent/client.js';
import { labSwitchBackend, readState, type NodeState } from '../../src/lab/lab.js';
import { netnsPids } from '../../src/kernel/netns.js';
import { alive } from '../../src/util/process.js';
import { cmdline } from '../../src/util/process.js';
import { allPairsFailures, eventually, inNs, tcpTransfer, upLab } from '../helpers/lab.js';
import { dataPath, metric } from './helpers.js';

/** The weft-udp processes running in a node's namespace. */
async function helpersIn(n: NodeState): Promise<number[]> {
  const pids = await netnsPids(n.netns);
  const named = await Promise.all(pids.map(async (p) => ((await cmdline(p)) ?? '').includes('weft-udp')));
  return pids.filter((_, i) => named[i]);
}

async function hasTun(n: NodeState): Promise<boolean> {
  return (await inNs(n.netns, ['ip', 'link', 'show', 'weft.udp'])).code === 0;
}

test(
  'udp lab switched to vxlan and back with Batch 1, then a node leaves: the data path follows the backend',
  { timeout: 240_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, underlay: 'flat', backend: 'udp' });
    t.after(down);
    const name = state.name;
    for (const n of state.nodes) assert.equal((await helpersIn(n)).length, 1, `weft-udp runs on ${n.name}`);

    await t.test('switched to vxlan: each agent removes the weft-udp and TUN device it finds', async () => {
      await labSwitchBackend(name, 'vxlan');
      const s = await readState(name);
      for (const n of s.nodes) {
        assert.deepEqual(await helpersIn(n), [], `no weft-udp left on ${n.name}`);
        assert.equal(await hasTun(n), false, `no weft.udp device left on ${n.name}`);
        assert.equal(await dataPath(n), undefined, 'no native data path in /status');
        assert.match(await readFile(join(n.dir, 'agent.log'), 'utf8'), /stopped the udp data path/);
      }
      assert.deepEqual(await allPairsFailures(s), []);
    });

    await t.test(
      'switched to udp with Batch 1 (a backend option): weft-udp runs as Flannel’s proxy',
      async () => {
        await labSwitchBackend(name, 'udp', undefined, { backend: { Batch: 1 } });
        const s = await readState(name);
        assert.deepEqual(s.backendOptions, { Batch: 1 }, 'the lab records the options');
        for (const n of s.nodes) {
          const d = (await dataPath(n)) as { state: string; mode?: string } | undefined;
          assert.equal(d?.state, 'up');
          assert.equal(d?.mode, 'batch1');
          assert.equal(await hasTun(n), true);
        }
        assert.deepEqual(await allPairsFailures(s), []);
        // What weft-udp itself counts, not what the agent asked of it: one packet per system call.
        const [n1, n2] = s.nodes as [NodeState, NodeState];
        const [a, b] = [s.pods.find((p) => p.node === n1.name)!, s.pods.find((p) => p.node === n2.name)!];
        const batch = async (call: string) => ({
          sum: (await metric(n1, 'weft_udp_batch_packets_sum', { call })) ?? 0,
          count: (await metric(n1, 'weft_udp_batch_packets_count', { call })) ?? 0,
        });
        const before = { send: await batch('send'), tun_read: await batch('tun_read') };
        assert.equal(await tcpTransfer(a.netns, b.netns, b.ip, 4 * 1024 * 1024), 4 * 1024 * 1024);
        for (const call of ['send', 'tun_read'] as const) {
          const after = await batch(call);
          const [sum, count] = [after.sum - before[call].sum, after.count - before[call].count];
          assert.ok(count >= 2800, `${call}: ${count} calls for 4 MiB of 1450-byte packets`);
          assert.equal(sum, count, `${call}: ${sum} packets in ${count} calls`);
        }
      },
    );

    await t.test('weft leave: the node’s weft-udp, TUN device and route go with it', async () => {
      const s = await readState(name);
      const n2 = s.nodes[1]!;
      const [pid] = await helpersIn(n2);
      assert.ok(pid !== undefined);
      const r = await agentRequest(join(n2.dir, 'agent.sock'), '/leave', 'POST');
      assert.equal(r.code, 200, r.body);
      assert.ok(await eventually(async () => !alive(pid)), `weft-udp ${pid} stopped`);
      assert.equal(await hasTun(n2), false, 'the TUN device is removed');
      const routes = await inNs(n2.netns, ['ip', 'route', 'show', 'proto', '87']);
      assert.equal(routes.stdout.trim(), '', 'no weft route left');
      // Not restarted behind the leaving agent's back.
      await new Promise((res) => setTimeout(res, 500));
      assert.deepEqual(await helpersIn(n2), []);
    });
  },
);
