import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentGet } from '../../src/agent/client.js';
import { labDir } from '../../src/lab/journal.js';
import { readState, type LabStatus } from '../../src/lab/lab.js';
import { cmdline, listNetns } from '../../src/lab/netns.js';
import { run } from '../../src/util/exec.js';
import { etcdctl, eventually, inNs, pings, upLab } from '../helpers/lab.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

/**
 * A lab driven as an operator drives it, through the CLI: no control over the agents' TCP address,
 * actions over the root-only socket; agents killed, seen dead with their signal, restarted under a
 * 20 ms ping; nodes and pods added and removed; `lab down` removing everything.
 */
test('lab lifecycle on the CLI; control only where root is', { timeout: 240_000 }, async (t) => {
  const { state, down } = await upLab({ nodes: 2, podsPerNode: 1, backend: 'vxlan' });
  t.after(down);
  const name = state.name;
  const weft = (...args: string[]) => run(process.execPath, [WEFT, ...args], { allowFailure: true });
  const lab = (...args: string[]) => weft('lab', ...args, '--name', name);
  const status = async () => {
    const r = await lab('status', '--json');
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as LabStatus;
  };
  const nodeStatus = async (n: string) => (await status()).nodes.find((x) => x.name === n);
  const node = (n: string) => state.nodes.find((x) => x.name === n)!;
  const pod = (n: string) => state.pods.find((p) => p.node === n)!;
  const sock = (n: string) => join(node(n).dir, 'agent.sock');
  const leaseOf = async (n: string) => {
    const subnet = (await nodeStatus(n))!.subnet!;
    return (await etcdctl(state, ['get', `/coreos.com/network/subnets/${subnet.replace('/', '-')}`])).stdout;
  };

  await t.test(
    "from a pod, no method on any path of a node's TCP address changes anything; its pods stay reachable",
    async () => {
      const lease = await leaseOf('n1');
      assert.match(lease, /"PublicIP":"198\.18\.0\.11"/);
      const target = `${node('n1').publicIP}:9909`;
      const probe = `
        const http = require('http');
        const ask = (method, path) => new Promise((ok) => {
          const headers = method === 'GET' ? {} : { 'content-type': 'application/json', 'content-length': 2 };
          const r = http.request({ host: '${node('n1').publicIP}', port: 9909, method, path, headers }, (res) => {
            res.resume();
            res.on('end', () => ok(method + ' ' + path + ' ' + res.statusCode));
          });
          r.on('error', (e) => ok(method + ' ' + path + ' ' + e.message));
          r.end(method === 'GET' ? undefined : '{}');
        });
        (async () => {
          for (const m of ['GET', 'POST', 'PUT', 'DELETE', 'PATCH'])
            for (const p of ['/leave', '/leave?now=1', '/status', '/healthz', '/readyz', '/metrics', '/', '/cni'])
              console.log(await ask(m, p));
        })();`;
      const r = await inNs(pod('n2').netns, [process.execPath, '-e', probe]);
      const answers = r.stdout.trim().split('\n');
      assert.equal(answers.length, 40, r.stdout + r.stderr);
      for (const a of answers) {
        const [method, path, code] = a.split(' ');
        const probeRead = method === 'GET' && ['/healthz', '/readyz', '/metrics'].includes(path!);
        if (probeRead) assert.equal(code, '200', `${a} (${target})`);
        else assert.ok(code === '404' || code === '405', `${a}: refused with 404 or 405`);
      }
      assert.equal(await leaseOf('n1'), lease, "n1's lease is untouched");
      const n1 = (await nodeStatus('n1'))!;
      assert.equal(n1.agent.state, 'running');
      assert.equal(n1.ready, true);
      assert.ok(await pings(pod('n2').netns, pod('n1').ip), 'pods on n1 stay reachable');
    },
  );

  await t.test("the agent's socket is root's alone: mode 0600, refused to another user", async () => {
    assert.equal((await stat(sock('n1'))).mode & 0o777, 0o600);
    const connect = `require('net').connect('${sock('n1')}').on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`;
    const r = await run('setpriv', [
      '--reuid=65534',
      '--regid=65534',
      '--clear-groups',
      process.execPath,
      '-e',
      connect,
    ]);
    assert.equal(r.stdout.trim(), 'EACCES');
    assert.equal((await agentGet(sock('n1'), '/status')).code, 200, 'root gets /status on the socket');
  });

  await t.test(
    'an agent killed with SIGKILL shows as exited by that signal; restarts (of it, of a running one, after a clean SIGTERM stop) lose no ping between pods',
    async () => {
      const ping = spawn('ip', ['netns', 'exec', pod('n2').netns, 'ping', '-i', '0.02', '-q', pod('n1').ip]);
      let out = '';
      ping.stdout.on('data', (b: Buffer) => (out += b.toString()));
      const ended = new Promise<void>((r) => ping.on('close', () => r()));
      try {
        await new Promise((r) => setTimeout(r, 300));
        const pid = (await nodeStatus('n1'))!.agent.pid;
        const k = await lab('agent', 'kill', 'n1');
        assert.equal(k.code, 0, k.stderr);
        const dead = (await nodeStatus('n1'))!;
        assert.deepEqual(
          {
            state: dead.agent.state,
            pid: dead.agent.pid,
            signal: 'signal' in dead.agent && dead.agent.signal,
          },
          { state: 'exited', pid, signal: 'SIGKILL' },
        );
        assert.equal(dead.ready, false);
        const table = (await lab('status')).stdout;
        assert.match(table, /^n1 .* exited: SIGKILL /m);
        const rs = await lab('agent', 'restart', 'n1');
        assert.equal(rs.code, 0, rs.stderr);
        const back = (await nodeStatus('n1'))!;
        assert.equal(back.agent.state, 'running');
        assert.notEqual(back.agent.pid, pid);
        assert.equal(back.ready, true);
        // A running agent is ended and started again.
        const before = (await nodeStatus('n2'))!.agent.pid;
        const rs2 = await lab('agent', 'restart', 'n2');
        assert.equal(rs2.code, 0, rs2.stderr);
        assert.notEqual((await nodeStatus('n2'))!.agent.pid, before);
        // A clean stop removes the agent's nftables table; the next one's first rule set must already
        // admit the peers' VXLAN packets (both ends of the ping, one after the other).
        for (const n of ['n1', 'n2']) {
          const term = await lab('agent', 'restart', n, '--signal', 'TERM');
          assert.equal(term.code, 0, term.stderr);
          assert.equal((await nodeStatus(n))!.ready, true);
        }
        const log = await readFile(join(node('n1').dir, 'agent.log'), 'utf8');
        assert.match(log, /"signal":"SIGTERM".*shutting down/, 'the agent on n1 stopped cleanly');
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        ping.kill('SIGINT');
        await ended;
      }
      assert.match(out, / 0% packet loss/, out);
      assert.match(out, /(\d{2,}) packets transmitted/, out);
    },
  );

  await t.test(
    'lab node add and pod add/del, then lab node remove: reachable, then gone everywhere',
    async () => {
      const add = await lab('node', 'add');
      assert.equal(add.code, 0, add.stderr);
      const s = await status();
      const n3 = s.nodes.find((n) => n.name === 'n3')!;
      assert.equal(n3.agent.state, 'running');
      assert.equal(n3.ready, true);
      const n3p1 = s.pods.find((p) => p.node === 'n3')!;
      assert.ok(await eventually(() => pings(pod('n1').netns, n3p1.ip)), 'the new node is reachable');
      const pa = await lab('pod', 'add', 'n3');
      assert.equal(pa.code, 0, pa.stderr);
      const n3p2 = (await status()).pods.find((p) => p.name === 'n3p2')!;
      assert.ok(await pings(pod('n1').netns, n3p2.ip), 'the new pod is reachable');
      const pd = await lab('pod', 'del', 'n3p2');
      assert.equal(pd.code, 0, pd.stderr);
      assert.ok(!(await listNetns()).includes(n3p2.netns), 'the pod namespace is gone');
      assert.ok(!(await status()).pods.some((p) => p.name === 'n3p2'));

      const rm = await lab('node', 'remove', 'n3');
      assert.equal(rm.code, 0, rm.stderr);
      const after = await status();
      assert.deepEqual(
        after.nodes.map((n) => n.name),
        ['n1', 'n2'],
      );
      assert.ok(!after.pods.some((p) => p.node === 'n3'));
      const ns = await listNetns();
      assert.ok(!ns.includes(n3.netns) && !ns.includes(n3p1.netns), 'node and pod namespaces gone');
      assert.equal(await cmdline(n3.agent.pid), undefined, "n3's agent is gone");
      const key = `/coreos.com/network/subnets/${n3.subnet!.replace('/', '-')}`;
      assert.equal((await etcdctl(state, ['get', key])).stdout, '', 'its lease was released');
      assert.ok(
        await eventually(
          async () =>
            !(await inNs(node('n1').netns, ['ip', 'route', 'show', 'proto', '87'])).stdout.includes(
              n3.subnet!,
            ),
        ),
        'n1 no longer routes to its subnet',
      );
    },
  );

  await t.test('weft leave over the unix socket takes the node out of the cluster', async () => {
    const lease = await leaseOf('n1');
    assert.notEqual(lease, '');
    const r = await weft('leave', '--socket', sock('n1'));
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'left the cluster\n');
    assert.equal(await leaseOf('n1'), '', 'its lease is released');
    assert.ok(
      await eventually(async () => {
        const a = (await nodeStatus('n1'))!.agent;
        return a.state === 'exited' && a.code === 0;
      }),
      'its agent exited with code 0',
    );
  });

  await t.test('lab down still removes every namespace, process and file', async () => {
    const pids = (await readState(name)).nodes.map((n) => n.agentPid).filter(Boolean);
    const supervisors = (
      await run('pgrep', ['-f', `weft-lab-agent ${labDir(name)}/`], { allowFailure: true })
    ).stdout
      .split('\n')
      .filter(Boolean)
      .map(Number);
    assert.ok(supervisors.length > 0, 'agents run under their supervisors');
    const r = await lab('down');
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      (await listNetns()).filter((n) => n.startsWith(`wl-${name}-`)),
      [],
    );
    for (const p of [...pids, ...supervisors])
      assert.equal(await cmdline(p), undefined, `process ${p} is gone`);
    assert.equal(existsSync(labDir(name)), false);
  });
});
