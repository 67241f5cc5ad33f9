// The fast path when the runtime lives in a mount namespace of its own (Podman's CNI backend; the
// agent as a DaemonSet pod while containerd mounts the namespaces on the host): the pod's namespace is
// a bind mount that exists only in the runtime's mount namespace. The shim opens it there and hands the
// open namespace to the agent, which must attach the pod through it — not resolve the path, which
// names nothing where the agent runs — and answer with the runtime's own path.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cniConfig, type LabState, type NodeState } from '../../src/lab/lab.js';
import { run, type RunResult } from '../../src/util/exec.js';
import { eventually, upLab } from '../helpers/lab.js';
import { rand, SHIM } from './helpers.js';

/**
 * A process in a private mount namespace (`unshare -m`) that plays the runtime: over /run/netns it
 * mounts a tmpfs of its own, and makes the pod's namespace there, bound at /run/netns/<name>. Nothing
 * of that is visible outside; the namespace disappears with the process.
 */
async function privateRuntime(t: TestContext, podNs: string) {
  const holder = spawn(
    'unshare',
    [
      '-m',
      '--propagation',
      'private',
      'sh',
      '-c',
      `mount -t tmpfs weft-test /run/netns && touch /run/netns/${podNs} && unshare --net=/run/netns/${podNs} true && echo ready && exec sleep 600`,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.after(() => {
    holder.kill('SIGKILL');
  });
  await new Promise<void>((resolve, reject) => {
    let err = '';
    holder.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    holder.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
    holder.once('exit', (code) => reject(new Error(`the private runtime exited ${code}: ${err}`)));
  });
  const mnt = `/proc/${holder.pid}/ns/mnt`;
  return {
    netns: `/run/netns/${podNs}`,
    /**
     * Runs argv in the runtime's mount namespace, in the network namespace at `net` (resolved there:
     * nsenter opens its namespace paths before it enters any, hence two).
     */
    exec: (
      net: string,
      argv: string[],
      o: { env?: NodeJS.ProcessEnv; input?: string } = {},
    ): Promise<RunResult> =>
      run('nsenter', [`--mount=${mnt}`, '--', 'nsenter', `--net=${net}`, '--', ...argv], {
        allowFailure: true,
        timeoutMs: 30_000,
        ...o,
      }),
  };
}

function cniEnv(command: string, netns: string, containerId: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    CNI_COMMAND: command,
    CNI_CONTAINERID: containerId,
    CNI_NETNS: netns,
    CNI_IFNAME: 'eth0',
    CNI_PATH: '/opt/cni/bin',
  };
}

/**
 * The commands the agent's server logged for this container, served or not, in order. The agent logs
 * asynchronously (pino), so a line may land a moment after the shim has its answer: poll for it.
 */
async function servedBy(node: NodeState, containerId: string, want: number): Promise<string[]> {
  const read = async () =>
    (await readFile(join(node.dir, 'agent.log'), 'utf8'))
      .split('\n')
      .filter((l) => l.includes('"msg":"CNI request') && l.includes(`"containerId":"${containerId}"`))
      .map((l) => {
        const e = JSON.parse(l) as { msg: string; command: string; unserved?: string };
        return e.msg === 'CNI request served' ? e.command : `${e.command} not served: ${e.unserved}`;
      });
  let lines = await read();
  await eventually(async () => (lines = await read()).length >= want, 5_000, 50);
  return lines;
}

test(
  'weft-cni through the fast path from a runtime in its own mount namespace: ADD, reach a pod on another node, CHECK, DEL',
  { timeout: 180_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, underlay: 'flat', backend: 'vxlan' });
    t.after(down);
    const lab: LabState = state;
    const [n1, n2] = lab.nodes as [NodeState, NodeState];
    const far = lab.pods.find((p) => p.node === n2.name)!;
    const podNs = `wcni-${rand()}-mnt`;
    const rt = await privateRuntime(t, podNs);
    assert.equal(existsSync(rt.netns), false, 'the bind mount exists only in the runtime’s mount namespace');
    const nodeNet = `/proc/${n1.agentPid}/ns/net`; // the runtime runs plugins in the node's namespace
    const config = cniConfig(n1);
    const id = `mntns-${rand()}`;

    const add = await rt.exec(nodeNet, [SHIM], {
      env: cniEnv('ADD', rt.netns, id),
      input: JSON.stringify(config),
    });
    assert.equal(add.code, 0, add.stdout + add.stderr);
    const result = JSON.parse(add.stdout) as {
      ips: { address: string }[];
      interfaces: { name: string; sandbox?: string }[];
    };
    const ip = result.ips[0]!.address.split('/')[0]!;
    assert.match(result.ips[0]!.address, /^10\.244\.\d+\.\d+\/24$/, add.stdout);
    assert.equal(
      result.interfaces.find((i) => i.name === 'eth0')?.sandbox,
      rt.netns,
      'the runtime’s path, not a handle',
    );
    assert.deepEqual(
      await servedBy(n1, id, 1),
      ['ADD'],
      'the agent served the ADD (not the shim’s local fallback)',
    );

    const addr = await rt.exec(rt.netns, ['ip', '-j', 'addr', 'show', 'dev', 'eth0']);
    assert.match(
      addr.stdout,
      new RegExp(`"local":"${ip.replaceAll('.', '\\.')}"`),
      'the pod has its address',
    );
    const ping = async () => (await rt.exec(rt.netns, ['ping', '-c', '1', '-W', '2', far.ip])).code === 0;
    assert.ok((await ping()) || (await ping()), `the pod reaches ${far.name} (${far.ip}) on ${n2.name}`);

    const check = await rt.exec(nodeNet, [SHIM], {
      env: cniEnv('CHECK', rt.netns, id),
      input: JSON.stringify({ ...config, prevResult: result }),
    });
    assert.equal(check.code, 0, check.stdout + check.stderr);
    const del = await rt.exec(nodeNet, [SHIM], {
      env: cniEnv('DEL', rt.netns, id),
      input: JSON.stringify(config),
    });
    assert.equal(del.code, 0, del.stdout + del.stderr);
    assert.deepEqual(
      await servedBy(n1, id, 3),
      ['ADD', 'CHECK', 'DEL'],
      'CHECK and DEL served by the agent too',
    );

    const left = await rt.exec(rt.netns, ['ip', '-o', 'link', 'show']);
    assert.doesNotMatch(left.stdout, /eth0/, 'DEL removed the pod’s interface');
    const allocations = await run('ls', [join(config.dataDir as string, 'weft')]);
    assert.doesNotMatch(
      allocations.stdout,
      new RegExp(`^${ip.replaceAll('.', '\\.')}_`, 'm'),
      'DEL released the address',
    );
    assert.equal((await rt.exec(rt.netns, ['ping', '-c', '1', '-W', '1', far.ip])).code === 0, false);
  },
);
