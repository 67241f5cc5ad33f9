import type { TestContext } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEtcd, stopEtcd } from '../../src/lab/etcd-server.js';
import { destroyNetns } from '../../src/kernel/netns.js';
import { run } from '../../src/util/exec.js';
import { inNs, uniqueName } from '../helpers/lab.js';

/**
 * A scratch network namespace for one agent, with its own etcd on that namespace's loopback, so that
 * whatever the agent does can only ever touch the scratch namespace. Removed after the test (every
 * process in it killed), with its temporary directory.
 */
export interface Scratch {
  ns: string;
  dir: string;
  etcd: { endpoint: string; pid: number };
  /** Writes the network config. */
  putConfig(text: string): Promise<unknown>;
}

export async function scratchNamespace(t: TestContext, prefix: string): Promise<Scratch> {
  const ns = `wt-${uniqueName(prefix)}`;
  const dir = await mkdtemp(join(tmpdir(), 'weft-scratch-'));
  await run('ip', ['netns', 'add', ns]);
  t.after(async () => {
    // Every process in it gone (waited for) before its files go: a dying etcd still writes its WAL.
    await destroyNetns(ns);
    await rm(dir, { recursive: true, force: true, maxRetries: 5 });
  });
  await run('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  const etcd = await startEtcd({ dir: join(dir, 'etcd'), host: '127.0.0.1', netns: ns });
  t.after(() => stopEtcd(etcd.pid));
  const putConfig = (text: string) =>
    inNs(ns, [
      'env',
      'ETCDCTL_API=3',
      'etcdctl',
      `--endpoints=${etcd.endpoint}`,
      'put',
      '/coreos.com/network/config',
      text,
    ]);
  return { ns, dir, etcd, putConfig };
}
