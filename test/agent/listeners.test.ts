import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { agentGet } from '../../src/agent/client.js';
import { spawnAgent, stopAgent, waitAgentReady } from '../../src/lab/agents.js';
import { run } from '../../src/util/exec.js';
import { inNs } from '../helpers/lab.js';
import { scratchNamespace } from './scratch.js';

/**
 * A real agent in a scratch namespace (its etcd on that namespace's loopback): /status reaches the
 * TCP listener only when --status-on-tcp asks for it; actions never do.
 */
test(
  '--status-on-tcp: /status on the TCP address only when asked for; POST /leave never',
  { timeout: 90_000 },
  async (t) => {
    const { ns, dir, etcd, putConfig } = await scratchNamespace(t, 'l');
    for (const cmd of [
      'link add e0 type veth peer name e1',
      'addr add 198.18.0.5/24 dev e0',
      'link set e1 up',
      'link set e0 up',
    ])
      await run('ip', ['-n', ns, ...cmd.split(' ')]);
    await putConfig('{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}');
    const ask = async (method: string, path: string) =>
      (
        await inNs(ns, [
          process.execPath,
          '-e',
          `const r=require('http').request({host:'127.0.0.1',port:9909,method:'${method}',path:'${path}',headers:{'content-length':0}},(res)=>{res.resume();console.log(res.statusCode)});r.on('error',(e)=>console.log(e.message));r.end()`,
        ])
      ).stdout.trim();
    const agentDir = join(dir, 'agent');
    const start = async (extra: string[]) => {
      const a = await spawnAgent({
        netns: ns,
        dir: agentDir,
        args: [
          `--etcd-endpoints=${etcd.endpoint}`,
          '--iface=e0',
          `--subnet-file=${join(agentDir, 'subnet.env')}`,
          `--status-socket=${join(agentDir, 'agent.sock')}`,
          '--healthz-addr=127.0.0.1:9909',
          '--no-cni-server',
          ...extra,
        ],
      });
      t.after(() => stopAgent({ dir: agentDir, agentPid: a.pid }, 'SIGKILL'));
      await waitAgentReady({ name: ns, dir: agentDir, pid: a.pid });
      return a.pid;
    };

    let pid = await start(['--status-on-tcp']);
    assert.equal(await ask('GET', '/status'), '200');
    assert.equal(await ask('GET', '/healthz'), '200');
    assert.equal(await ask('POST', '/leave'), '404');
    assert.equal(
      (await agentGet(join(agentDir, 'agent.sock'), '/readyz')).code,
      200,
      'still ready: nothing left',
    );

    await stopAgent({ dir: agentDir, agentPid: pid }, 'SIGTERM');
    pid = await start([]);
    assert.equal(await ask('GET', '/status'), '404');
    assert.equal(await ask('GET', '/metrics'), '200');
    assert.equal((await agentGet(join(agentDir, 'agent.sock'), '/status')).code, 200, 'the socket serves it');
  },
);
