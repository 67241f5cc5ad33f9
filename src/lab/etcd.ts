import { join } from 'node:path';
import { formatNetworkConfig, type BackendOptions, type BackendType } from '../config/network-config.js';
import { configKey, DEFAULT_PREFIX } from '../store/lease.js';
import { startEtcd } from './etcd-server.js';
import { Journal, labDir } from './journal.js';
import { execIn, killAll } from './netns.js';
import type { LabSpec } from './spec.js';
import { readState, writeState, type LabState } from './state.js';

/** The lab's etcd: the network config in it, and stopping or starting it to rehearse an outage. */

type EtcdRef = Pick<LabState['etcd'], 'netns' | 'endpoints'>;

export async function etcdctl(etcd: EtcdRef, args: string[]): Promise<string> {
  const r = await execIn(etcd.netns!, [
    'env',
    'ETCDCTL_API=3',
    'etcdctl',
    `--endpoints=${etcd.endpoints.join(',')}`,
    ...args,
  ]);
  return r.stdout;
}

/**
 * Writes Flannel's network config for the spec with this backend (and extra keys of its Backend
 * object); weft's FastPath key only when the fast path is on (a lab without it keeps Flannel's keys).
 */
export async function putNetworkConfig(
  etcd: EtcdRef,
  spec: Pick<LabSpec, 'network' | 'subnetLen'> & Partial<Pick<LabSpec, 'fastPath'>>,
  backend: BackendType,
  options?: BackendOptions,
): Promise<void> {
  const fastPath = spec.fastPath ?? 'none';
  await etcdctl(etcd, [
    'put',
    configKey(DEFAULT_PREFIX),
    formatNetworkConfig({
      network: spec.network,
      subnetLen: spec.subnetLen,
      backend: { type: backend, ...options },
      ...(fastPath !== 'none' && { fastPath }),
    }),
  ]);
}

/** Starts the lab's etcd in its namespace (journaled), with its data in the lab directory. */
export async function startLabEtcd(lab: string, netns: string, host: string, j: Journal) {
  const e = await startEtcd({ dir: join(labDir(lab), 'etcd'), host, netns });
  await j.record({ kind: 'process', pid: e.pid, what: 'etcd' });
  return e;
}

/** Stops or starts the lab's etcd (same data directory), to rehearse an outage. */
export async function labEtcd(name: string, action: 'stop' | 'start'): Promise<void> {
  const s = await readState(name);
  if (action === 'stop') return killAll([s.etcd.pid]);
  const host = new URL(s.etcd.endpoints[0]!).hostname;
  const e = await startLabEtcd(name, s.etcd.netns!, host, new Journal(labDir(name)));
  s.etcd.pid = e.pid;
  await writeState(s);
}
