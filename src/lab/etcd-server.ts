import { mkdir, open, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { execIn, spawnIn } from '../kernel/netns.js';
import { WeftError } from '../util/errors.js';

/**
 * A real etcd server (Debian's etcd-server package) for labs and tests: in a given network namespace,
 * or on the loopback of the caller's namespace. It is started detached in its own session so that it
 * can outlive the command that started it (`weft lab up`), and is stopped by pid.
 */
export interface EtcdServerOptions {
  /** Directory for data and the log (created). */
  dir: string;
  /** Address to listen on for clients, e.g. 198.18.0.2 or 127.0.0.1. */
  host: string;
  clientPort?: number;
  peerPort?: number;
  /** Named network namespace to run in; undefined = the caller's. */
  netns?: string;
  /** Extra etcd flags. */
  extraArgs?: string[];
  /** Serve clients over TLS (https://): pass --cert-file, --key-file, … in extraArgs. */
  tls?: boolean;
}

export interface EtcdServer {
  pid: number;
  endpoint: string;
  logFile: string;
}

export const ETCD_BINARY = '/usr/bin/etcd';

export async function startEtcd(o: EtcdServerOptions): Promise<EtcdServer> {
  const clientPort = o.clientPort ?? 2379;
  const peerPort = o.peerPort ?? 2380;
  await mkdir(o.dir, { recursive: true });
  const endpoint = `${o.tls ? 'https' : 'http'}://${o.host}:${clientPort}`;
  const args = [
    '--name',
    'weft-lab',
    '--data-dir',
    join(o.dir, 'data'),
    '--listen-client-urls',
    endpoint,
    '--advertise-client-urls',
    endpoint,
    '--listen-peer-urls',
    `http://127.0.0.1:${peerPort}`,
    '--initial-advertise-peer-urls',
    `http://127.0.0.1:${peerPort}`,
    '--initial-cluster',
    `weft-lab=http://127.0.0.1:${peerPort}`,
    '--log-level',
    'warn',
    '--logger',
    'zap',
    ...(o.extraArgs ?? []),
  ];
  const logFile = join(o.dir, 'etcd.log');
  const log = await open(logFile, 'a');
  const child = spawnIn(o.netns, [ETCD_BINARY, ...args], {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
  });
  await log.close();
  const pid = child.pid;
  if (pid === undefined)
    throw new WeftError(`cannot start etcd (${ETCD_BINARY})`, {
      hint: 'install etcd-server: scripts/install.sh',
    });
  let exited: number | null | undefined;
  child.on('exit', (code) => (exited = code));
  child.unref();
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new WeftError(`etcd exited with ${exited} at start: see ${logFile}`);
    if (await etcdHealthy(o, clientPort)) return { pid, endpoint, logFile };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new WeftError(`etcd did not answer on ${endpoint} within 20 s: see ${logFile}`);
}

async function etcdHealthy(o: EtcdServerOptions, port: number): Promise<boolean> {
  if (o.netns && o.tls) {
    // etcdctl would need the client's certificates: that the port accepts is enough here.
    const probe = `exec 3<>/dev/tcp/${o.host}/${port}`;
    const r = await execIn(o.netns, ['bash', '-c', probe], { allowFailure: true });
    return r.code === 0;
  }
  if (o.netns) {
    const r = await execIn(
      o.netns,
      ['etcdctl', `--endpoints=http://${o.host}:${port}`, '--dial-timeout=1s', 'endpoint', 'health'],
      {
        allowFailure: true,
        env: { ...process.env, ETCDCTL_API: '3' },
      },
    );
    return r.code === 0;
  }
  return new Promise((resolve) => {
    const s = createConnection({ host: o.host, port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Stops an etcd started by startEtcd and removes its directory. */
export async function stopEtcd(pid: number, dir?: string): Promise<void> {
  try {
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50; i++) {
      process.kill(pid, 0);
      await new Promise((r) => setTimeout(r, 100));
    }
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
  if (dir) await rm(dir, { recursive: true, force: true });
}
