/**
 * The real Neutron API (scripts/neutron-fixture.sh, API-only mode: SQLite, noauth) on a free port of
 * 127.0.0.1 with its own state directory, so that test files can each run one side by side. stop()
 * stops it and removes the directory; call it in `after`, it is safe to call twice.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../src/util/exec.js';
import { Etcd3 } from 'etcd3';
import { freePort, startTestEtcd, type TestEtcd } from '../helpers/etcd.js';
import { NeutronClient } from '../../src/openstack/neutron.js';

export interface TestNeutron {
  /** e.g. http://127.0.0.1:40123 (without /v2.0) */
  url: string;
  /** A client with no auth (noauth Neutron: every request is admin in project fake_project_id). */
  client: NeutronClient;
  stop(): Promise<void>;
}

const SCRIPT = join(process.cwd(), 'scripts', 'neutron-fixture.sh');

export async function startTestNeutron(env: Record<string, string> = {}): Promise<TestNeutron> {
  const dir = await mkdtemp(join(tmpdir(), 'weft-neutron-'));
  const port = await freePort();
  const e = { ...process.env, NEUTRON_CI_DIR: dir, NEUTRON_PORT: String(port), ...env };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await run('bash', [SCRIPT, 'stop'], { env: e, allowFailure: true });
    await rm(dir, { recursive: true, force: true });
  };
  try {
    await run('bash', [SCRIPT, 'install-api'], { env: e, timeoutMs: 300_000 });
    await run('bash', [SCRIPT, 'start-api'], { env: e, timeoutMs: 120_000 });
  } catch (err) {
    await stop();
    throw err;
  }
  const url = `http://127.0.0.1:${port}`;
  return { url, client: new NeutronClient({ endpoint: url }), stop };
}

/** A network with one subnet; optionally attached to a router. */
export async function makeSubnet(
  c: NeutronClient,
  cidr: string,
  opts: { name?: string; routerId?: string; networkId?: string } = {},
): Promise<{ networkId: string; subnetId: string }> {
  const networkId = opts.networkId ?? (await c.createNetwork({ name: opts.name ?? `net-${cidr}` })).id;
  const gw = cidr.replace(/\.0\/\d+$/, '.1');
  const s = await c.createSubnet({
    network_id: networkId,
    ip_version: 4,
    cidr,
    gateway_ip: gw,
    enable_dhcp: false,
  });
  if (opts.routerId) await c.addRouterInterface(opts.routerId, s.id);
  return { networkId, subnetId: s.id };
}

/** The API-only Neutron and a real etcd, started side by side; `stop()` stops both (whichever started). */
export async function startNeutronAndEtcd(): Promise<{
  neutron: TestNeutron;
  etcd: TestEtcd;
  kv: Etcd3;
  stop(): Promise<void>;
}> {
  const [n, e] = await Promise.allSettled([startTestNeutron(), startTestEtcd()]);
  const stopAll = async () => {
    await Promise.allSettled([
      n.status === 'fulfilled' && n.value.stop(),
      e.status === 'fulfilled' && e.value.stop(),
    ]);
  };
  if (n.status === 'rejected' || e.status === 'rejected') {
    await stopAll();
    throw n.status === 'rejected' ? n.reason : (e as PromiseRejectedResult).reason;
  }
  const kv = new Etcd3({ hosts: e.value.endpoint });
  return {
    neutron: n.value,
    etcd: e.value,
    kv,
    stop: async () => {
      kv.close();
      await stopAll();
    },
  };
}
