// deploy/: the systemd unit passes `systemd-analyze verify` and asks for what the agent needs; the
// DaemonSet manifest parses and carries what a node needs (host mounts, propagation, capabilities,
// settings that are real agent flags); `weft install-cni` installs a working plugin into a temporary
// root, atomically and idempotently.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { weftConflist } from '../../src/cli/install-cni-command.js';
import { run } from '../../src/util/exec.js';
import { call, makeNetns, makeNode } from '../cni/helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WEFT = join(ROOT, 'dist/src/cli/weft.js');
const UNIT = join(ROOT, 'deploy/weft-agent.service');
const MANIFEST = join(ROOT, 'deploy/kube-weft.yml');

/** The long flags `weft agent --help` lists. */
async function agentFlags(): Promise<Set<string>> {
  const help = (await run(process.execPath, [WEFT, 'agent', '--help'])).stdout;
  return new Set([...help.matchAll(/--([a-z][a-z0-9-]+)/g)].map((m) => m[1]!));
}

/** FLANNELD_FOO_BAR / WEFT_FOO_BAR → foo-bar (no-x stays as written). */
const flagOfEnv = (name: string) =>
  name
    .replace(/^(FLANNELD|WEFT)_/, '')
    .toLowerCase()
    .replace(/_/g, '-');

/**
 * `systemd-analyze verify` checks that ExecStart's program exists: in a private mount namespace,
 * /usr/local/bin is an overlay (on a tmpfs) where `weft` is the built entry point.
 */
async function verifyUnit(unit: string): Promise<{ code: number | null; out: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-unit-'));
  try {
    const script = `set -e
      mount -t tmpfs tmpfs "$1"; mkdir "$1/up" "$1/work"
      mount -t overlay overlay -o "lowerdir=/usr/local/bin,upperdir=$1/up,workdir=$1/work" /usr/local/bin
      ln -s "$2" /usr/local/bin/weft
      cd /; systemd-analyze verify --man=no "$3" 2>&1`;
    const r = await run(
      'unshare',
      ['-m', '--propagation', 'private', 'bash', '-c', script, 'verify', dir, WEFT, unit],
      {
        allowFailure: true,
      },
    );
    return { code: r.code, out: (r.stdout + r.stderr).trim() };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function unitSettings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m) out.set(m[1]!, [...(out.get(m[1]!) ?? []), m[2]!]);
  }
  return out;
}

test('the systemd unit passes systemd-analyze verify and asks for what the agent needs, no more', async (t) => {
  const v = await verifyUnit(UNIT);
  assert.equal(v.code, 0, v.out);
  assert.equal(v.out, '', 'no warning either');
  // The check can fail: a misspelt directive is reported.
  const dir = await mkdtemp(join(tmpdir(), 'weft-unit-bad-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const text = await readFile(UNIT, 'utf8');
  await writeFile(
    join(dir, 'weft-agent.service'),
    text.replace('NoNewPrivileges=yes', 'NoNewPrivilegez=yes'),
  );
  assert.match((await verifyUnit(join(dir, 'weft-agent.service'))).out, /Unknown key 'NoNewPrivilegez'/);

  const s = unitSettings(text);
  const one = (k: string) => {
    assert.equal(s.get(k)?.length, 1, `${k} set once`);
    return s.get(k)![0]!;
  };
  assert.equal(one('Type'), 'notify', 'the agent tells systemd when it is ready');
  assert.equal(one('NotifyAccess'), 'main', 'READY=1 comes from the agent itself');
  assert.match(one('Restart'), /^(always|on-failure)$/);
  // weft-udp (the udp data path) outlives a restart of the agent: only the agent is signalled.
  assert.equal(one('KillMode'), 'process');
  const caps = (k: string) => new Set(one(k).split(/\s+/));
  assert.deepEqual(caps('CapabilityBoundingSet'), new Set(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']));
  assert.deepEqual(caps('AmbientCapabilities'), new Set(['CAP_NET_ADMIN', 'CAP_SYS_ADMIN']));
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(s.has('ProtectKernelTunables'), false, 'the agent writes net.* sysctls');
  const exec = one('ExecStart').split(/\s+/);
  assert.deepEqual(exec.slice(0, 2), ['/usr/local/bin/weft', 'agent']);
  assert.ok(exec.includes('--subnet-file=/run/flannel/subnet.env'));
  const flags = await agentFlags();
  for (const a of exec.slice(2))
    assert.ok(flags.has(a.replace(/^--/, '').split('=')[0]!), `${a} is an agent flag`);
  // What it writes is writable: /run/weft, /run/flannel (kept across restarts), the CNI store.
  assert.deepEqual(new Set(one('RuntimeDirectory').split(/\s+/)), new Set(['weft', 'flannel']));
  assert.equal(one('RuntimeDirectoryPreserve'), 'yes');
  assert.equal(one('StateDirectory'), 'cni/weft');
});

interface Mount {
  name: string;
  mountPath: string;
  mountPropagation?: string;
  readOnly?: boolean;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  volumeMounts?: Mount[];
  envFrom?: { configMapRef?: { name: string } }[];
  env?: { name: string; value?: string }[];
  securityContext?: { privileged?: boolean; capabilities?: { add?: string[]; drop?: string[] } };
}
interface Volume {
  name: string;
  hostPath?: { path: string; type?: string };
  secret?: { secretName: string };
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  data?: Record<string, string>;
  spec?: {
    selector: { matchLabels: Record<string, string> };
    template: {
      metadata: { labels: Record<string, string> };
      spec: {
        hostNetwork?: boolean;
        tolerations?: unknown[];
        initContainers?: Container[];
        containers: Container[];
        volumes: Volume[];
      };
    };
  };
}

test('the DaemonSet manifest parses and carries the mounts, propagation, capabilities and settings a node needs', async (t) => {
  const docs = parseAllDocuments(await readFile(MANIFEST, 'utf8'));
  for (const d of docs) assert.deepEqual(d.errors, [], 'valid YAML');
  const objs = docs.map((d) => d.toJS() as K8sObject).filter(Boolean);
  for (const o of objs) {
    assert.ok(
      o.apiVersion && o.kind && o.metadata?.name,
      `apiVersion, kind, metadata.name: ${JSON.stringify(o).slice(0, 80)}`,
    );
    if (o.kind !== 'Namespace') assert.equal(o.metadata.namespace, 'kube-weft', `${o.kind} in the namespace`);
  }
  const byKind = (k: string) => objs.filter((o) => o.kind === k);
  assert.equal(byKind('Namespace')[0]?.metadata.name, 'kube-weft');
  const ds = byKind('DaemonSet')[0]!;
  assert.equal(ds.apiVersion, 'apps/v1');
  const tmpl = ds.spec!.template;
  for (const [k, v] of Object.entries(ds.spec!.selector.matchLabels))
    assert.equal(tmpl.metadata.labels[k], v, 'the selector matches the pod template');
  const pod = tmpl.spec;
  assert.equal(pod.hostNetwork, true, 'the agent programs the node’s own namespace');
  assert.ok((pod.tolerations ?? []).length > 0, 'runs on tainted nodes too');

  const volumes = new Map(pod.volumes.map((v) => [v.name, v]));
  const hostPathOf = (m: Mount) => volumes.get(m.name)?.hostPath?.path;
  const containers = [...(pod.initContainers ?? []), ...pod.containers];
  for (const c of containers) {
    assert.ok(c.name && c.image, 'container name and image');
    for (const m of c.volumeMounts ?? [])
      assert.ok(volumes.has(m.name), `${c.name}: volume ${m.name} exists`);
  }
  const agent = pod.containers.find((c) => c.command?.includes('agent'))!;
  const mounts = new Map((agent.volumeMounts ?? []).map((m) => [hostPathOf(m), m]));
  for (const p of ['/run/weft', '/run/flannel', '/var/lib/cni', '/run/netns'])
    assert.equal(mounts.get(p)?.mountPath, p, `the agent sees the host's ${p} at the same path`);
  assert.equal(
    mounts.get('/run/netns')?.mountPropagation,
    'HostToContainer',
    'namespaces mounted later show up',
  );
  assert.equal(agent.securityContext?.privileged, false);
  assert.deepEqual(new Set(agent.securityContext?.capabilities?.add), new Set(['NET_ADMIN', 'SYS_ADMIN']));
  assert.deepEqual(agent.securityContext?.capabilities?.drop, ['ALL']);

  // Its settings are real agent flags, in flanneld's environment form.
  const flags = await agentFlags();
  const cm = byKind('ConfigMap').find((c) =>
    agent.envFrom?.some((e) => e.configMapRef?.name === c.metadata.name),
  )!;
  assert.ok(cm, 'the agent takes its settings from a ConfigMap');
  const envNames = [...Object.keys(cm.data ?? {}), ...(agent.env ?? []).map((e) => e.name)];
  assert.ok(envNames.includes('FLANNELD_ETCD_ENDPOINTS'));
  for (const n of envNames) {
    assert.match(n, /^(FLANNELD|WEFT)_[A-Z_]+$/);
    assert.ok(flags.has(flagOfEnv(n)), `${n} names the agent flag --${flagOfEnv(n)}`);
  }

  // The init step is `weft install-cni` into the host's CNI directories; run it as written, into a
  // temporary root standing for the container's /host mounts.
  const init = (pod.initContainers ?? []).find((c) => c.command?.includes('install-cni'))!;
  assert.ok(init, 'an init container installs weft-cni');
  const argv = [...init.command!, ...(init.args ?? [])];
  const arg = (flag: string) => argv[argv.indexOf(flag) + 1]!;
  const initMounts = new Map((init.volumeMounts ?? []).map((m) => [m.mountPath, hostPathOf(m)]));
  assert.equal(initMounts.get(arg('--dir')), '/opt/cni/bin', '--dir is the host’s /opt/cni/bin');
  assert.equal(
    initMounts.get(arg('--conf-dir')),
    '/etc/cni/net.d',
    '--conf-dir is the host’s /etc/cni/net.d',
  );
  const root = await mkdtemp(join(tmpdir(), 'weft-init-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const r = await run(process.execPath, [
    WEFT,
    ...argv.slice(1).map((a) => (a.startsWith('/') ? root + a : a)),
  ]);
  assert.match(r.stdout, /installed .*\/host\/opt\/cni\/bin\/weft-cni$/m);
  assert.ok(existsSync(join(root, 'host/etc/cni/net.d/10-weft.conflist')));
});

test('weft install-cni into a temporary root: a working plugin and conflist, atomic and idempotent', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'weft-install-cni-'));
  t.after(() => rm(root, { recursive: true, force: true }));
  const [bin, conf] = [join(root, 'opt/cni/bin'), join(root, 'etc/cni/net.d')];
  const install = () => run(process.execPath, [WEFT, 'install-cni', '--dir', bin, '--conf-dir', conf]);
  const first = await install();
  assert.match(first.stdout, new RegExp(`^installed ${bin}/weft-cni$`, 'm'));
  assert.match(first.stdout, new RegExp(`^installed ${conf}/10-weft.conflist$`, 'm'));
  const conflistPath = join(conf, '10-weft.conflist');
  const conflist = JSON.parse(await readFile(conflistPath, 'utf8')) as { plugins: { type: string }[] };
  assert.deepEqual(conflist, weftConflist());
  assert.equal(conflist.plugins[0]!.type, 'weft-cni');
  assert.equal((await stat(join(bin, 'weft-cni'))).mode & 0o777, 0o755);
  assert.equal((await stat(conflistPath)).mode & 0o777, 0o644);
  const files = async (d: string): Promise<string[]> =>
    (await readdir(d, { recursive: true, withFileTypes: true }))
      .filter((e) => e.isFile())
      .map((e) => join(e.parentPath, e.name));
  const all = [...(await files(bin)), ...(await files(conf))];
  assert.deepEqual(
    all.filter((f) => f.endsWith('.tmp')),
    [],
    'no temporary file left',
  );

  // Again: nothing changes, not even a modification time.
  const mtimes = await Promise.all(all.map(async (f) => (await stat(f)).mtimeMs));
  const second = await install();
  assert.doesNotMatch(second.stdout, /^installed/m);
  assert.deepEqual(await Promise.all(all.map(async (f) => (await stat(f)).mtimeMs)), mtimes);
  // A conflist edited by hand is put back.
  await writeFile(conflistPath, '{}');
  assert.match((await install()).stdout, new RegExp(`^installed ${conflistPath}$`, 'm'));
  assert.deepEqual(JSON.parse(await readFile(conflistPath, 'utf8')), weftConflist());

  // The installed copy works on its own (no agent serves this node: the shim runs the installed Node
  // plugin, which must find every module it loads): ADD, then DEL, through it.
  const node = await makeNode(t);
  const [pod] = await makeNetns(t, 'p1');
  const res = (await call(node, 'ADD', pod, { plugin: join(bin, 'weft-cni') })) as {
    ips: { address: string }[];
  };
  assert.equal(res.ips[0]!.address, '10.244.1.2/24');
  await call(node, 'DEL', pod, { plugin: join(bin, 'weft-cni') });
});
