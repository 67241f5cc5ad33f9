// weft-cni's fast path: the native shim forwards each call to a resident server in the node's network
// namespace (`weft cni-server`, or the agent itself) and gives the runtime exactly what the Node plugin
// gives; with no server it runs the Node plugin, so nothing depends on the server being up.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import { CNI_SOCKET_DIR } from '../../src/cni/server.js';
import {
  call,
  callRaw,
  httpGet,
  httpServer,
  links,
  makeNetns,
  makeNode,
  SHIM,
  type TestNode,
} from './helpers.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));

/** Starts `weft cni-server` inside the node's namespace; resolves once its socket is there. */
async function startServer(t: TestContext, node: TestNode) {
  const sock = `${CNI_SOCKET_DIR}/net-${(await stat(`/run/netns/${node.ns}`)).ino}.sock`;
  const child = spawn('ip', ['netns', 'exec', node.ns, process.execPath, WEFT, 'cni-server'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    child.kill(signal);
    await exited;
  };
  t.after(() => stop());
  for (let i = 0; i < 200 && !log.includes('serving weft-cni requests'); i++)
    await new Promise((r) => setTimeout(r, 25));
  assert.match(log, /serving weft-cni requests/, 'the server started');
  const served = () => log.split('\n').filter((l) => l.includes('CNI request served'));
  /** The server's log lines for served requests, once `n` have arrived (its log pipe may lag its answers). */
  const servedAtLeast = async (n: number) => {
    for (let i = 0; i < 100 && served().length < n; i++) await new Promise((r) => setTimeout(r, 20));
    return served();
  };
  return { sock, stop, served, servedAtLeast };
}

test('through the server: ADD, CHECK, DEL give the Node plugin’s results; the pod reaches its gateway', async (t) => {
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'p1');
  const server = await startServer(t, node);
  const res = (await call(node, 'ADD', pod, { plugin: SHIM })) as { ips: { address: string }[] };
  assert.equal(res.ips[0]!.address, '10.244.1.2/24');
  const first = await server.servedAtLeast(1);
  assert.equal(first.length, 1, 'the server served the ADD (no Node start)');
  assert.match(first[0]!, /"command":"ADD".*"code":0/);
  await httpServer(t, node.ns, node.gateway, 8080, 'gw');
  assert.equal(await httpGet(pod!, node.gateway, 8080), 'gw');
  await call(node, 'CHECK', pod, { plugin: SHIM, config: node.config({ prevResult: res }) });
  await call(node, 'DEL', pod, { plugin: SHIM });
  assert.equal((await server.servedAtLeast(3)).length, 3);
  const left = (await readdir(`${node.dataDir}/weft`)).filter((f) => /_[0-9a-f]{16}$/.test(f));
  assert.deepEqual(left, [], 'DEL released the address');
});

test('through the server, every error is byte for byte what the Node plugin prints', async (t) => {
  const node = await makeNode(t);
  const [pod, busy] = await makeNetns(t, 'p1', 'p2');
  const server = await startServer(t, node);
  const dir = await mkdtemp('/tmp/wcni-notns-');
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(`${dir}/file`, '');
  // The pod end of an earlier ADD: a second attachment with the same ifname collides in the namespace.
  await call(node, 'ADD', busy, { containerId: 'first' });
  // [what, verb, options, served]: a CNI_NETNS the shim cannot open or hand over exactly gets the Node
  // plugin's own answer, in the runtime's mount namespace.
  const cases: [string, Parameters<typeof callRaw>[1], Parameters<typeof callRaw>[3], boolean][] = [
    ['unsupported cniVersion', 'ADD', { config: node.config({ cniVersion: '9.9.9' }) }, true],
    ['missing CNI_NETNS', 'ADD', { netnsPath: '' }, true],
    ['bad netns path', 'ADD', { netnsPath: '/nonexistent/ns' }, false],
    ['relative netns path', 'ADD', { netnsPath: 'run/netns/x' }, false],
    ['netns path with a space', 'ADD', { netnsPath: `${dir}/a b` }, false],
    ['a file that is not a namespace', 'ADD', { netnsPath: `${dir}/file` }, true],
    ['the interface exists in the namespace', 'ADD', { containerId: 'second' }, true],
    ['invalid config field', 'ADD', { config: node.config({ mtu: 'big' }) }, true],
    ['unknown CNI_ARGS key', 'ADD', { args: 'FOO=bar' }, true],
    ['CHECK without prevResult', 'CHECK', {}, true],
    ['STATUS on an old cniVersion', 'STATUS', { config: node.config({ cniVersion: '1.0.0' }) }, true],
    ['no subnet file', 'ADD', { config: node.config({ subnetFile: '/nonexistent/subnet.env' }) }, true],
  ];
  for (const [what, verb, o] of cases) {
    const p = what === 'the interface exists in the namespace' ? busy : pod;
    const viaNode = await callRaw(node, verb, p, o);
    const viaShim = await callRaw(node, verb, p, { ...o, plugin: SHIM });
    assert.notEqual(viaShim.exitCode, 0, what);
    assert.equal(viaShim.exitCode, viaNode.exitCode, what);
    assert.equal(viaShim.stdout, viaNode.stdout, what);
  }
  assert.match(
    (await callRaw(node, 'ADD', busy, { containerId: 'second', plugin: SHIM })).stdout,
    new RegExp(`already exists in /run/netns/${busy}"`),
    'the answer names the runtime’s path, not the server’s handle on it',
  );
  const served = cases.filter((c) => c[3]).length + 1;
  assert.equal((await server.servedAtLeast(served)).length, served, 'answered by the server');
  // VERSION too, and a config that is not JSON.
  const v = await callRaw(node, 'VERSION', undefined, { plugin: SHIM, config: { cniVersion: '1.0.0' } });
  assert.deepEqual(JSON.parse(v.stdout), {
    cniVersion: '1.0.0',
    supportedVersions: ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'],
  });
});

test('20 parallel ADDs through the server get 20 distinct addresses', async (t) => {
  const node = await makeNode(t);
  const pods = await makeNetns(t, ...Array.from({ length: 20 }, (_, i) => `p${i}`));
  const server = await startServer(t, node);
  const results = await Promise.all(pods.map((p) => call(node, 'ADD', p, { plugin: SHIM })));
  const addrs = results.map((r) => (r as { ips: { address: string }[] }).ips[0]!.address);
  assert.equal(new Set(addrs).size, 20, addrs.join(' '));
  assert.equal((await server.servedAtLeast(20)).length, 20);
  await Promise.all(pods.map((p) => call(node, 'DEL', p, { plugin: SHIM })));
});

test('with no server (never started, or gone and its socket left behind) the shim runs the Node plugin', async (t) => {
  const node = await makeNode(t);
  const [p1, p2] = await makeNetns(t, 'p1', 'p2');
  const r1 = (await call(node, 'ADD', p1, { plugin: SHIM })) as { ips: { address: string }[] };
  assert.equal(r1.ips[0]!.address, '10.244.1.2/24');
  const server = await startServer(t, node);
  await server.stop('SIGKILL');
  // A server killed hard leaves its socket file: the shim must not hang on it or fail.
  assert.ok((await stat(server.sock)).isSocket(), 'the dead server left its socket');
  const r2 = (await call(node, 'ADD', p2, { plugin: SHIM })) as { ips: { address: string }[] };
  assert.equal(r2.ips[0]!.address, '10.244.1.3/24');
  await call(node, 'DEL', p1, { plugin: SHIM });
  await call(node, 'DEL', p2, { plugin: SHIM });
  assert.equal(server.served().length, 0);
});

test('only root may ask: the socket directory is 0700 and the socket 0600', async (t) => {
  const node = await makeNode(t);
  const server = await startServer(t, node);
  assert.equal((await stat(CNI_SOCKET_DIR)).mode & 0o777, 0o700);
  assert.equal((await stat(server.sock)).mode & 0o777, 0o600);
});

test('a request that names a namespace without handing it over is not served (the shim then runs the plugin)', async (t) => {
  const node = await makeNode(t);
  const server = await startServer(t, node);
  const vars = [
    'CNI_COMMAND=ADD',
    'CNI_CONTAINERID=c1',
    `CNI_NETNS=/run/netns/${node.ns}`,
    'CNI_IFNAME=eth0',
  ];
  const body = JSON.stringify(node.config());
  const answer = await new Promise<string>((resolve, reject) => {
    const s = connect(server.sock, () => {
      s.end(
        `weft-cni/2 ${vars.length} ${Buffer.byteLength(body)}\n${vars.map((v) => `${v}\0`).join('')}${body}`,
      );
    });
    let got = '';
    s.on('data', (b: Buffer) => (got += b.toString()));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
  assert.match(answer, /^unserved CNI_NETNS came without its descriptor\n$/);
  assert.equal(
    (await links(node.ns)).filter((l) => l.ifname.startsWith('veth')).length,
    0,
    'nothing was attached',
  );
});

test('a server that cannot serve (says so, or breaks off its answer) leaves the call to the Node plugin', async (t) => {
  const node = await makeNode(t);
  const [p1, p2] = await makeNetns(t, 'p1', 'p2');
  await mkdir(CNI_SOCKET_DIR, { recursive: true, mode: 0o700 });
  const sock = `${CNI_SOCKET_DIR}/net-${(await stat(`/run/netns/${node.ns}`)).ino}.sock`;
  // A stand-in for a server in trouble, on the node's socket: it reads the request, then answers badly.
  let answer = 'unserved the test says no\n';
  let asked = 0;
  const fake = createServer({ allowHalfOpen: true }, (s) => {
    s.on('data', () => undefined);
    s.on('end', () => (asked++, s.end(answer)));
  });
  // Namespace inodes are reused: a socket left by an agent killed in another test (its namespace
  // long gone) may carry this name. The real server removes such a file before it listens; so does this.
  await rm(sock, { force: true });
  await new Promise<void>((r) => fake.listen(sock, r));
  t.after(() => new Promise<void>((r) => fake.close(() => r())).then(() => rm(sock, { force: true })));
  const r1 = (await call(node, 'ADD', p1, { plugin: SHIM })) as { ips: { address: string }[] };
  assert.equal(r1.ips[0]!.address, '10.244.1.2/24');
  answer = '0 500 0\n{"cniVersion"'; // cut short
  const r2 = (await call(node, 'ADD', p2, { plugin: SHIM })) as { ips: { address: string }[] };
  assert.equal(r2.ips[0]!.address, '10.244.1.3/24');
  assert.equal(asked, 2, 'the shim asked the server first');
  assert.equal((await links(p1!, 'eth0'))[0]?.addr_info?.[0]?.local, '10.244.1.2', 'the pod got its address');
});
