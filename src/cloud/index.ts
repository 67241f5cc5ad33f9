/**
 * Entry point for the agent's `neutron` and `auto` backends.
 *
 *   const provider = createNeutronProvider({ etcd, prefix, cluster, node, publicIp, mac });
 *   const caps = await provider.init();
 *
 * The cloud is taken from clouds.yaml / OS_* exactly as openstacksdk finds it (OS_CLOUD selects it),
 * unless `cloud` passes one in.
 */
import type { Etcd3 } from 'etcd3';
import { loadCloudConfig, type CloudConfig, type LoadCloudOptions } from '../openstack/config.js';
import { NeutronClient, type Logger } from '../openstack/neutron.js';
import { EtcdOwnershipStore } from './ownership.js';
import { NeutronRouteProvider, type NeutronProviderOptions } from './neutron.js';

export * from './provider.js';
export * from './ownership.js';
export { NeutronRouteProvider, type NeutronProviderOptions } from './neutron.js';

export interface CreateNeutronProviderOptions extends Omit<
  NeutronProviderOptions,
  'client' | 'store' | 'log'
> {
  /** The agent's etcd client and keyspace prefix (e.g. "/coreos.com/network"); records go under <prefix>/cloud/. */
  etcd: Etcd3;
  prefix: string;
  /** A cloud already loaded; default: loadCloudConfig(configOptions). */
  cloud?: CloudConfig;
  configOptions?: LoadCloudOptions;
  timeoutMs?: number;
  log?: Logger;
}

export function createNeutronProvider(o: CreateNeutronProviderOptions): NeutronRouteProvider {
  const { etcd, prefix, cloud, configOptions, timeoutMs, log, ...rest } = o;
  const extra: { timeoutMs?: number; log?: Logger } = {};
  if (timeoutMs !== undefined) extra.timeoutMs = timeoutMs;
  if (log) extra.log = log;
  const client = NeutronClient.fromCloud(cloud ?? loadCloudConfig(configOptions), extra);
  const opts: NeutronProviderOptions = { ...rest, client, store: new EtcdOwnershipStore(etcd, prefix) };
  if (log) opts.log = log;
  return new NeutronRouteProvider(opts);
}
