import { test } from 'node:test';
import assert from 'node:assert/strict';
import { labStatus } from '../../src/lab/lab.js';
import { pings, upLab } from '../helpers/lab.js';

test(
  'concurrent joins: 30 nodes start at once, all get distinct subnets, all pods reach all pods',
  { timeout: 300_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 30, podsPerNode: 1, backend: 'vxlan' });
    t.after(down);
    const s = await labStatus(state.name);
    assert.equal(s.nodes.length, 30);
    assert.ok(s.nodes.every((n) => n.ready));
    assert.equal(new Set(s.nodes.map((n) => n.subnet)).size, 30, 'distinct subnets');
    const failures: string[] = [];
    for (const a of state.pods) {
      const res = await Promise.all(
        state.pods
          .filter((b) => b !== a)
          .map(async (b) =>
            (await pings(a.netns, b.ip)) || (await pings(a.netns, b.ip, 2)) ? '' : `${a.name}->${b.name}`,
          ),
      );
      failures.push(...res.filter(Boolean));
    }
    assert.deepEqual(failures, []);
  },
);
