import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentGet } from '../../src/agent/client.js';
import { readSubnetEnv } from '../../src/config/subnet-env.js';
import { nsName, type NodeState } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import { etcdctl, eventually, inNs, pings, tcpTransfer, upLab } from '../helpers/lab.js';

const PEER_SRC = fileURLToPath(new URL('../../../test/udp/flannel-peer.c', import.meta.url));
const FL_IP = '198.18.0.50';

test(
  'interop: a node that speaks only Flannel’s udp wire format exchanges pings and TCP with weft pods',
  { timeout: 240_000 },
  async (t) => {
    const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, underlay: 'flat', backend: 'udp' });
    t.after(down); // also removes the Flannel node's namespace: it carries the lab's prefix
    const dir = await mkdtemp(join(tmpdir(), 'weft-flannel-peer-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const bin = join(dir, 'flannel-peer');
    await run('gcc', ['-O2', '-Wall', '-Werror', '-o', bin, PEER_SRC]);

    // Its subnet: a /24 no weft node holds. Its lease is what a Flannel udp node writes: PublicIP only.
    const subnets = await Promise.all(
      state.nodes.map(async (n) => (await readSubnetEnv(join(n.dir, 'subnet.env'))).subnet.toString()),
    );
    const k = [200, 201, 202].find((x) => !subnets.includes(`10.244.${x}.0/24`))!;
    const flPod = `10.244.${k}.5`;
    const fl = nsName(state.name, 'fl');
    await run('ip', ['netns', 'add', fl]);
    await run('ip', [
      'link',
      'add',
      'eth0',
      'netns',
      fl,
      'type',
      'veth',
      'peer',
      'name',
      'fl',
      'netns',
      state.switchNetns,
    ]);
    await run('ip', ['-n', state.switchNetns, 'link', 'set', 'fl', 'master', 'br0', 'up']);
    for (const cmd of [
      'link set lo up',
      `addr add ${FL_IP}/24 dev eth0`,
      'link set eth0 up',
      'tuntap add dev flannel0 mode tun',
      'link set flannel0 mtu 1472 up',
      `addr add 10.244.${k}.0/32 dev flannel0`,
      'route add 10.244.0.0/16 dev flannel0',
      `addr add ${flPod}/32 dev lo`, // what its pods would be
    ])
      await run('ip', ['-n', fl, ...cmd.split(' ')]);
    const routes = state.nodes.map((n, i) => `${subnets[i]}=${n.publicIP}`);
    const peer = spawn('ip', ['netns', 'exec', fl, bin, 'flannel0', FL_IP, '8285', ...routes], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    peer.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<void>((r) => peer.once('exit', () => r()));
    t.after(async () => {
      peer.kill('SIGTERM');
      await exited;
    });
    assert.ok(await eventually(async () => out.includes('ready')), 'the Flannel-format node runs');
    const put = await etcdctl(state, [
      'put',
      `/coreos.com/network/subnets/10.244.${k}.0-24`,
      `{"PublicIP":"${FL_IP}"}`,
    ]);
    assert.equal(put.code, 0, put.stderr);

    const [n1] = state.nodes as [NodeState, NodeState];
    const [a, b] = state.pods as [(typeof state.pods)[0], (typeof state.pods)[0]];

    await t.test('weft lists it as a udp peer (no BackendType, as Flannel publishes)', async () => {
      assert.ok(
        await eventually(async () => {
          const st = JSON.parse((await agentGet(join(n1.dir, 'agent.sock'), '/status')).body) as {
            peers: { publicIP: string; path: string }[];
          };
          return st.peers.some((p) => p.publicIP === FL_IP && p.path === 'udp');
        }),
      );
    });

    await t.test('pings both ways between weft pods and the Flannel-format node', async () => {
      for (const p of [a, b])
        assert.ok(await eventually(() => pings(p.netns, flPod)), `${p.name} → ${flPod}`);
      for (const p of [a, b]) {
        const r = await inNs(fl, ['ping', '-c', '2', '-i', '0.2', '-I', flPod, p.ip]);
        assert.match(r.stdout, /2 received/, `${flPod} → ${p.name}`);
      }
    });

    await t.test('10 MiB TCP transfers arrive intact in both directions', async () => {
      const bytes = 10 * 1024 * 1024;
      assert.equal(await tcpTransfer(a.netns, fl, flPod, bytes, 5301), bytes, 'weft pod → Flannel node');
      assert.equal(await tcpTransfer(fl, b.netns, b.ip, bytes, 5302), bytes, 'Flannel node → weft pod');
    });

    await t.test('the Flannel-format node carried the traffic itself, one datagram per packet', async () => {
      peer.kill('SIGTERM');
      await exited;
      const m = /sent (\d+) received (\d+)/.exec(out);
      assert.ok(m, out);
      // 10 MiB in ≤ 1472-byte packets each way: thousands of datagrams in both directions.
      assert.ok(Number(m[1]) > 7000 && Number(m[2]) > 7000, out);
    });
  },
);
