// flanneld's etcd knobs: TLS with client certificates, user and password, every flag also as
// FLANNELD_<FLAG> / WEFT_<FLAG>, a warning for plain HTTP, and sd_notify READY=1 once the lease and
// subnet.env are in place. Against a real etcd in a scratch namespace (certificates made here with
// openssl); the agent runs in that namespace, on a veth pair of its own.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd, stopEtcd } from '../../src/lab/etcd-server.js';
import { run, type RunResult } from '../../src/util/exec.js';
import { inNs, uniqueName } from '../helpers/lab.js';

const WEFT = fileURLToPath(new URL('../../src/cli/weft.js', import.meta.url));
const CONFIG = '{"Network":"10.244.0.0/16","Backend":{"Type":"host-gw"}}';

/** A scratch namespace with lo and a veth pair (wt-pub 10.97.0.1/24) for the agent; all removed after. */
async function scratch(t: TestContext) {
  const ns = `wt-${uniqueName('e')}`;
  const dir = await mkdtemp(join(tmpdir(), 'weft-etcd-tls-'));
  await run('ip', ['netns', 'add', ns]);
  t.after(async () => {
    const pids = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
    for (const p of pids.stdout.split('\n').filter(Boolean)) process.kill(Number(p), 'SIGKILL');
    await run('ip', ['netns', 'del', ns], { allowFailure: true });
    await rm(dir, { recursive: true, force: true });
  });
  await run('ip', ['-n', ns, '-batch', '-'], {
    input: [
      'link set lo up',
      'link add wt-pub type veth peer name wt-peer',
      'addr add 10.97.0.1/24 dev wt-pub',
      'link set wt-pub up',
      'link set wt-peer up',
    ].join('\n'),
  });
  return { ns, dir };
}

const openssl = (dir: string, args: string[]) =>
  run(
    'openssl',
    args.map((a) => a.replaceAll('@', dir)),
  );

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA. */
async function makeCerts(dir: string): Promise<void> {
  await writeFile(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  await writeFile(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const key = ['-newkey', 'rsa:2048', '-nodes'];
  await openssl(dir, [
    'req',
    '-x509',
    ...key,
    '-keyout',
    '@/ca.key',
    '-out',
    '@/ca.crt',
    '-days',
    '1',
    '-subj',
    '/CN=weft-test-ca',
  ]);
  for (const who of ['server', 'client']) {
    await openssl(dir, [
      'req',
      ...key,
      '-keyout',
      `@/${who}.key`,
      '-out',
      `@/${who}.csr`,
      '-subj',
      `/CN=weft-test-${who}`,
    ]);
    await openssl(dir, [
      'x509',
      '-req',
      '-in',
      `@/${who}.csr`,
      '-CA',
      '@/ca.crt',
      '-CAkey',
      '@/ca.key',
      '-CAcreateserial',
      '-out',
      `@/${who}.crt`,
      '-days',
      '1',
      '-extfile',
      `@/${who}.ext`,
    ]);
  }
}

/** `weft agent` in the namespace until it exits (expected to fail fast) or `timeoutMs`. */
function agentOnce(ns: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, process.execPath, WEFT, 'agent', ...args], {
    env: { ...process.env, ...env },
    allowFailure: true,
    timeoutMs: 30_000,
  });
}

/** Starts the agent in the background; resolves with its log once `file` exists (its subnet.env). */
async function agentUntil(t: TestContext, ns: string, args: string[], env: NodeJS.ProcessEnv, file: string) {
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, WEFT, 'agent', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout!.on('data', (b: Buffer) => (log += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (log += b.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  t.after(async () => {
    child.kill('SIGTERM');
    await exited;
  });
  for (let i = 0; i < 300 && !existsSync(file) && child.exitCode === null; i++)
    await new Promise((r) => setTimeout(r, 100));
  return { log: () => log, stop: async () => (child.kill('SIGTERM'), await exited) };
}

const oneLine = (r: RunResult) => {
  const lines = r.stderr.split('\n').filter(Boolean);
  assert.notEqual(r.code, 0, 'the agent exits non-zero');
  assert.equal(lines.length, 1, `one line on stderr: ${r.stderr}`);
  assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
  return lines[0]!;
};

test(
  'etcd with TLS client-certificate auth: reached only with the certificates; FLANNELD_* and WEFT_* forms; READY=1 to systemd',
  { timeout: 120_000 },
  async (t) => {
    const { ns, dir } = await scratch(t);
    await makeCerts(dir);
    const port = 2379;
    const etcd = await startEtcd({
      dir: join(dir, 'etcd'),
      host: '127.0.0.1',
      clientPort: port,
      netns: ns,
      tls: true,
      extraArgs: [
        `--cert-file=${dir}/server.crt`,
        `--key-file=${dir}/server.key`,
        `--trusted-ca-file=${dir}/ca.crt`,
        '--client-cert-auth',
      ],
    });
    t.after(() => stopEtcd(etcd.pid));
    assert.equal(etcd.endpoint, `https://127.0.0.1:${port}`);
    const tlsCtl = [`--cacert=${dir}/ca.crt`, `--cert=${dir}/client.crt`, `--key=${dir}/client.key`];
    for (let i = 0; i < 50; i++) {
      const r = await inNs(ns, [
        'env',
        'ETCDCTL_API=3',
        'etcdctl',
        `--endpoints=${etcd.endpoint}`,
        ...tlsCtl,
        'put',
        '/coreos.com/network/config',
        CONFIG,
      ]);
      if (r.code === 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const common = ['--iface=wt-pub', `--status-socket=${dir}/agent.sock`, '--no-cni-server'];

    // The flag wins over the environment: FLANNELD_ETCD_ENDPOINTS names a port nobody serves.
    const noCerts = await agentOnce(
      ns,
      [`--etcd-endpoints=${etcd.endpoint}`, `--subnet-file=${dir}/a.env`, ...common],
      {
        FLANNELD_ETCD_ENDPOINTS: 'https://127.0.0.1:1',
      },
    );
    assert.match(
      oneLine(noCerts),
      /^weft agent: etcd at https:\/\/127\.0\.0\.1:2379 presented a TLS certificate this agent does not trust \(.+\): pass the CA that signed it with --etcd-cafile$/,
    );
    const caOnly = await agentOnce(ns, [
      `--etcd-endpoints=${etcd.endpoint}`,
      `--etcd-cafile=${dir}/ca.crt`,
      `--subnet-file=${dir}/a.env`,
      ...common,
    ]);
    assert.match(
      oneLine(caOnly),
      /^weft agent: etcd at https:\/\/127\.0\.0\.1:2379 rejected this agent's TLS client certificate .*: pass --etcd-certfile and --etcd-keyfile$/,
    );
    const missing = await agentOnce(ns, [
      `--etcd-endpoints=${etcd.endpoint}`,
      `--etcd-cafile=${dir}/nope.crt`,
      `--subnet-file=${dir}/a.env`,
      ...common,
    ]);
    assert.match(oneLine(missing), /^weft agent: cannot read --etcd-cafile .*nope\.crt: ENOENT/);
    assert.equal(existsSync(`${dir}/a.env`), false, 'no lease without the certificates');

    // All in flanneld's environment form; WEFT_SUBNET_FILE beats FLANNELD_SUBNET_FILE.
    const notifySock = join(dir, 'notify.sock');
    const listener = spawn(
      'python3',
      [
        '-c',
        'import socket,sys\ns=socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM)\ns.bind(sys.argv[1])\nprint("bound",flush=True)\nwhile True: print(s.recv(4096).decode(),flush=True)',
        notifySock,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    t.after(() => {
      listener.kill('SIGKILL');
    });
    let notes = '';
    await new Promise<void>((resolve) =>
      listener.stdout!.on(
        'data',
        (b: Buffer) => ((notes += b.toString()), notes.includes('bound') && resolve()),
      ),
    );
    const agent = await agentUntil(
      t,
      ns,
      common,
      {
        FLANNELD_ETCD_ENDPOINTS: etcd.endpoint,
        FLANNELD_ETCD_CAFILE: `${dir}/ca.crt`,
        FLANNELD_ETCD_CERTFILE: `${dir}/client.crt`,
        FLANNELD_ETCD_KEYFILE: `${dir}/client.key`,
        FLANNELD_SUBNET_FILE: `${dir}/flanneld.env`,
        WEFT_SUBNET_FILE: `${dir}/weft.env`,
        NOTIFY_SOCKET: notifySock,
      },
      `${dir}/weft.env`,
    );
    assert.ok(existsSync(`${dir}/weft.env`), `the agent leased a subnet over TLS: ${agent.log()}`);
    assert.match(await readFile(`${dir}/weft.env`, 'utf8'), /^FLANNEL_SUBNET=10\.244\.\d+\.1\/24$/m);
    assert.equal(existsSync(`${dir}/flanneld.env`), false, 'WEFT_ beat FLANNELD_');
    assert.doesNotMatch(agent.log(), /plain HTTP/, 'no warning for an https endpoint');
    const leases = await inNs(ns, [
      'env',
      'ETCDCTL_API=3',
      'etcdctl',
      `--endpoints=${etcd.endpoint}`,
      ...tlsCtl,
      'get',
      '--prefix',
      '--keys-only',
      '/coreos.com/network/subnets/',
    ]);
    assert.match(leases.stdout, /10\.244\.\d+\.0-24/, 'the lease is in etcd');
    for (let i = 0; i < 50 && !notes.includes('READY=1'); i++) await new Promise((r) => setTimeout(r, 100));
    assert.match(notes, /^READY=1$/m, 'systemd was told READY=1');
    await agent.stop();
    for (let i = 0; i < 20 && !notes.includes('STOPPING=1'); i++)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(notes, /^STOPPING=1$/m);
  },
);

test(
  'etcd with user and password: refused without or with a wrong password, reached with the right one; plain HTTP warns',
  { timeout: 120_000 },
  async (t) => {
    const { ns, dir } = await scratch(t);
    const etcd = await startEtcd({ dir: join(dir, 'etcd'), host: '127.0.0.1', netns: ns });
    t.after(() => stopEtcd(etcd.pid));
    const ctl = (...args: string[]) =>
      inNs(ns, ['env', 'ETCDCTL_API=3', 'etcdctl', `--endpoints=${etcd.endpoint}`, ...args]);
    for (const step of [
      ['user', 'add', 'root', '--new-user-password=root-pw'],
      ['user', 'add', 'weft', '--new-user-password=weft-pw'],
      ['role', 'add', 'weft'],
      ['role', 'grant-permission', 'weft', '--prefix=true', 'readwrite', '/coreos.com/network/'],
      ['user', 'grant-role', 'weft', 'weft'],
      ['auth', 'enable'],
      ['--user=root:root-pw', 'put', '/coreos.com/network/config', CONFIG],
    ]) {
      const r = await ctl(...step);
      assert.equal(r.code, 0, `etcdctl ${step.join(' ')}: ${r.stderr}`);
    }
    const common = [
      `--etcd-endpoints=${etcd.endpoint}`,
      '--iface=wt-pub',
      `--status-socket=${dir}/agent.sock`,
      '--no-cni-server',
      `--subnet-file=${dir}/subnet.env`,
    ];
    assert.match(
      oneLine(await agentOnce(ns, common)),
      /^weft agent: etcd at http:\/\/127\.0\.0\.1:2379 requires a user: pass --etcd-username and --etcd-password$/,
    );
    assert.match(
      oneLine(await agentOnce(ns, [...common, '--etcd-username=weft', '--etcd-password=wrong'])),
      /refused the user and password: check --etcd-username and --etcd-password$/,
    );
    assert.match(
      oneLine(await agentOnce(ns, [...common, '--etcd-username=weft'])),
      /--etcd-username and --etcd-password go together/,
    );
    const agent = await agentUntil(
      t,
      ns,
      common,
      { WEFT_ETCD_USERNAME: 'weft', FLANNELD_ETCD_PASSWORD: 'weft-pw' },
      `${dir}/subnet.env`,
    );
    assert.ok(existsSync(`${dir}/subnet.env`), `the agent leased a subnet as user weft: ${agent.log()}`);
    assert.match(
      agent.log(),
      /etcd endpoint http:\/\/127\.0\.0\.1:2379 is plain HTTP/,
      'plain HTTP is warned about',
    );
    await agent.stop();
  },
);
