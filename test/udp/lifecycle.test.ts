import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { agentGet } from '../../src/agent/client.js';
import { labRestartAgent, readState, type NodeState } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import { eventually, inNs, pings, upLab } from '../helpers/lab.js';
import { dataPath, metric } from './helpers.js';

const WEFT_JS = new URL('../../src/cli/weft.js', import.meta.url).pathname;

test(
  'udp data path lifecycle: a killed or hung weft-udp is restarted and reported; agents killed under a 20 ms ping lose nothing',
  { timeout: 240_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, underlay: 'flat', backend: 'udp' });
    t.after(down);
    const [n1] = state.nodes as [NodeState, NodeState];
    const [a, b] = state.pods.map((p) => p) as [(typeof state.pods)[0], (typeof state.pods)[0]];
    const sock = join(n1.dir, 'agent.sock');

    await t.test('weft-udp killed: the agent restarts it at once and says why', async () => {
      const before = (await dataPath(n1))!;
      assert.equal(before.state, 'up');
      process.kill(before.pid!, 'SIGKILL');
      assert.ok(
        await eventually(async () => {
          const d = await dataPath(n1);
          return d?.state === 'up' && d.pid !== before.pid && d.restarts === 1;
        }),
        'a new weft-udp is up',
      );
      const d = (await dataPath(n1))!;
      assert.match(d.lastExit!.reason, new RegExp(`weft-udp \\(pid ${before.pid}\\) killed by SIGKILL`));
      assert.equal(await metric(n1, 'weft_udp_datapath_restarts_total'), 1);
      assert.equal(await metric(n1, 'weft_udp_datapath_up'), 1);
      assert.ok(await eventually(() => pings(a.netns, b.ip)), 'pods reach each other again');
      const log = await readFile(join(n1.dir, 'agent.log'), 'utf8');
      assert.match(log, /udp data path lost: weft-udp \(pid \d+\) killed by SIGKILL.*restarting it/);
    });

    await t.test(
      'weft-udp hung: /readyz names it at once, it is killed after 5 s and restarted',
      async () => {
        const before = (await dataPath(n1))!;
        process.kill(before.pid!, 'SIGSTOP');
        try {
          assert.ok(
            await eventually(async () => {
              const r = await agentGet(sock, '/readyz');
              return r.code === 503 && /udp data path \(pid \d+\) has not answered/.test(r.body);
            }, 10_000),
            '/readyz reports the silent data path',
          );
          assert.ok(
            await eventually(async () => {
              const d = await dataPath(n1);
              return d?.state === 'up' && d.pid !== before.pid && d.restarts === 2;
            }, 20_000),
            'the hung weft-udp was replaced',
          );
        } finally {
          try {
            process.kill(before.pid!, 'SIGCONT');
          } catch {
            /* killed */
          }
        }
        assert.match((await dataPath(n1))!.lastExit!.reason, /stopped answering for 5 s and was killed/);
        assert.ok(
          await eventually(async () => (await agentGet(sock, '/readyz')).code === 200),
          'ready again',
        );
        const st = await run(process.execPath, [WEFT_JS, 'status', '--socket', sock]);
        assert.match(
          st.stdout,
          /datapath: udp up \(pid \d+, gso, 1 worker\); restarts 2 \(last .*stopped answering/,
        );
      },
    );

    await t.test(
      'both agents killed (SIGKILL) and restarted under a 20 ms ping: no packet lost',
      async () => {
        const helpers = await Promise.all(state.nodes.map(async (n) => (await dataPath(n))!.pid));
        const ping = inNs(a.netns, ['ping', '-i', '0.02', '-c', '400', '-q', b.ip], { timeoutMs: 60_000 });
        await new Promise((r) => setTimeout(r, 1000));
        for (const n of state.nodes) await labRestartAgent(state.name, n.name, { signal: 'SIGKILL' });
        const r = await ping;
        assert.match(r.stdout, /400 packets transmitted, 400 received, 0% packet loss/);
        const s = await readState(state.name);
        for (const [i, n] of s.nodes.entries()) {
          const d = (await dataPath(n))!;
          assert.equal(d.pid, helpers[i], `${n.name}: the same weft-udp carried on`);
          const log = await readFile(join(n.dir, 'agent.log'), 'utf8');
          assert.match(log, /adopted the running udp data path/);
        }
      },
    );
  },
);
