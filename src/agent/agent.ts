import { parseNetworkConfig } from '../config/network-config.js';
import { createBackend } from '../backend/index.js';
import { podMtu } from '../backend/types.js';
import { configKey } from '../store/lease.js';
import { connectEtcd, SubnetRegistry, type EtcdSecurity } from '../store/registry.js';
import { describeError, WeftError } from '../util/errors.js';
import { formatIPv4 } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { Timers } from '../util/timers.js';
import { startCniServer, type CniServer } from '../cni/server.js';
import { effectiveMode, type FastPathMode } from '../config/fast-path-mode.js';
import type { CloudOptions } from './cloud.js';
import { DataPlane } from './dataplane.js';
import { EtcdLink } from './etcd-link.js';
import { serve, type AgentEndpoints, type Listeners } from './http.js';
import { describeIface, selectPublicInterface } from './iface.js';
import { nodeContext, prepareMember, type ClusterMember, type NodeFacts } from './member.js';
import { AgentMetrics } from './metrics.js';
import { releaseDataPath } from './node-datapath.js';
import { TrafficManager } from './traffic.js';

export interface AgentOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  /** TLS and user for etcd (flanneld's --etcd-cafile/certfile/keyfile/username/password). */
  etcdSecurity?: EtcdSecurity;
  ifaces: string[];
  ifaceRegex?: string[];
  ifaceCanReach?: string;
  publicIp?: string;
  subnetFile: string;
  ipMasq: boolean;
  leaseTtlSeconds: number;
  renewMarginSeconds: number;
  /** Full kernel reconcile (drift repair) period. */
  resyncSeconds: number;
  /** TCP address for the probes (/healthz, /readyz, /metrics); never for actions. */
  healthzAddr?: string;
  /** Also serve /status (the cluster's topology as this node sees it) on the TCP address. */
  statusOnTcp?: boolean;
  /** Unix socket (root only) for everything, actions included (/leave). */
  statusSocket?: string;
  /** Serve weft-cni's fast path (the C shim forwards plugin calls to this process). */
  cniServer?: boolean;
  /** Cloud routing (neutron, or auto on a cloud): clouds.yaml cloud name and file, cluster name. */
  cloud?: CloudOptions;
  /** Period of the cloud re-check (pairs and routes repaired if they drifted). */
  cloudResyncSeconds?: number;
  /** Adopt Flannel's data path on this node instead of refusing to start (docs/migrating-from-flannel.md). */
  takeOverFlannel?: boolean;
  /** A stop leaves the nftables table too, so that the node keeps forwarding (rollback to Flannel). */
  keepDataPath?: boolean;
  /** The BPF fast path (--fast-path); undefined: the network config's FastPath, else none. */
  fastPath?: FastPathMode;
  /** Called after the node left the cluster (POST /leave); the CLI exits the process. */
  onLeft?: () => void;
  log: Logger;
}

/**
 * The node agent: leases a subnet, publishes this node, watches the other leases and reconciles the
 * kernel to them. Start-up order follows Flannel's (reference/flannel.md §1.1); everything after the
 * lease is a reconcile loop, so the agent can be killed and restarted at any moment without touching
 * a kernel object that is already right.
 *
 * This class is the process around the parts: the HTTP listeners, the CNI fast path, the start-up
 * sequence and the stop. The parts are built in `start()` once the config is read (member.ts): own
 * lease (own-lease.ts), peer table (peer-table.ts, peer-sync.ts), reconciler (reconciler.ts), data
 * path hooks (node-datapath.ts), cloud coordinator (cloud-coordinator.ts).
 */
export class Agent implements AgentEndpoints {
  readonly metrics = new AgentMetrics();
  readonly promRegistry = this.metrics.registry;
  private readonly log: Logger;
  private readonly dp: DataPlane;
  private readonly traffic: TrafficManager;
  private readonly stopper = new AbortController();
  private readonly timers = new Timers();
  private lastTick = Date.now();
  private listeners: Listeners | undefined;
  private cniServer: CniServer | undefined;
  private etcd: EtcdLink | undefined;
  /** Known once the config is read and the interface chosen. */
  private facts: NodeFacts | undefined;
  private member: ClusterMember | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log;
    this.dp = new DataPlane(opts.log.child({ part: 'dataplane' }));
    this.traffic = new TrafficManager(opts.log.child({ part: 'traffic' }));
  }

  // ---------------------------------------------------------------- endpoints
  healthy(): boolean {
    return Date.now() - this.lastTick < 15_000;
  }

  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.member?.lease.current) reasons.push('no subnet lease yet');
    if (!this.member?.reconciler.programmed) reasons.push('data path not programmed yet');
    if (!this.etcd?.up) reasons.push(`etcd at ${this.opts.etcdEndpoints.join(',')} is unreachable`);
    reasons.push(...(this.member?.dataPathReadiness() ?? []));
    return { ready: reasons.length === 0, reasons };
  }

  status(): unknown {
    const f = this.facts;
    const m = this.member;
    return {
      ready: this.ready(),
      backend: f?.config.backend.type,
      iface: f && { name: f.iface.name, publicIP: formatIPv4(f.iface.ip), mtu: f.iface.mtu },
      podMtu: f ? podMtu(nodeContext(f), f.backend) : undefined,
      lease: undefined,
      etcd: { endpoints: this.opts.etcdEndpoints, up: this.etcd?.up ?? false },
      peers: [],
      corruptLeases: [],
      ...m?.status(),
    };
  }

  // ---------------------------------------------------------------- lifecycle
  async start(): Promise<void> {
    try {
      await this.startUp();
    } catch (err) {
      if (this.stopper.signal.aborted) return; // stopped (or left) while starting: not a failure
      throw err;
    }
  }

  private async startUp(): Promise<void> {
    const o = this.opts;
    const signal = this.stopper.signal;
    this.timers.every(1000, () => (this.lastTick = Date.now()));
    this.listeners = await serve(this, {
      tcp: o.healthzAddr,
      socket: o.statusSocket,
      statusOnTcp: o.statusOnTcp,
    });
    if (o.cniServer) {
      // Not fatal: without it the weft-cni shim runs the Node plugin itself, only slower.
      this.cniServer = await startCniServer({ log: this.log.child({ part: 'cni' }) }).catch((e: unknown) => {
        this.log.warn(
          `cannot serve weft-cni's fast path: ${describeError(e)}; pods are attached the slow way`,
        );
        return undefined;
      });
    }
    const registry = new SubnetRegistry(connectEtcd(o.etcdEndpoints, o.etcdSecurity), o.etcdPrefix);
    const etcd = (this.etcd = new EtcdLink(registry, o.etcdEndpoints, this.metrics, this.log, signal));

    const text = await etcd.retry('read the network config', async () => {
      const t = await registry.getConfigText();
      if (t === undefined) {
        throw new WeftError(`network config not found at ${configKey(registry.prefix)}`, {
          hint: `write it, e.g. etcdctl put ${configKey(registry.prefix)} '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'`,
        });
      }
      return t;
    });
    etcd.markUp();
    const config = parseNetworkConfig(text); // a ConfigError here is fatal: the caller prints it and exits
    const backend = createBackend(config);
    const iface = await selectPublicInterface(o, o.publicIp);
    this.facts = { config, backend, iface };
    this.log.info(
      { backend: backend.type, iface: describeIface(iface), network: config.network.toString() },
      'starting',
    );
    this.member = await prepareMember({
      ...this.facts,
      subnetFile: o.subnetFile,
      ipMasq: o.ipMasq,
      fastPath: effectiveMode(o.fastPath, config.fastPath),
      takeOverFlannel: o.takeOverFlannel === true,
      lease: { ttlSeconds: o.leaseTtlSeconds, renewMarginSeconds: o.renewMarginSeconds },
      resyncSeconds: o.resyncSeconds,
      cloud: o.cloud,
      cloudResyncSeconds: o.cloudResyncSeconds ?? 30,
      etcd,
      dp: this.dp,
      traffic: this.traffic,
      metrics: this.metrics,
      log: this.log,
      signal,
      readinessChanged: () => this.metrics.ready.set(this.ready().ready ? 1 : 0),
    });
    await this.member.start();
  }

  /** The node leaves the cluster: cloud objects, lease and kernel state removed; then opts.onLeft (exit). */
  async leave(): Promise<void> {
    this.log.warn('leaving the cluster: releasing cloud routes and pairs, the lease and the data path');
    this.stopper.abort();
    this.timers.clear();
    await this.member?.leave();
    await releaseDataPath(this.dp, this.traffic, this.log.child({ part: 'dataplane' }));
    setTimeout(() => this.opts.onLeft?.(), 100);
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    this.timers.clear();
    await this.member?.stop();
    if (!this.opts.keepDataPath) await this.traffic.remove().catch(() => undefined);
    await this.cniServer?.close().catch(() => undefined);
    this.listeners?.close();
    await this.etcd?.registry.close().catch(() => undefined);
    this.log.info(
      this.opts.keepDataPath
        ? 'stopped (lease, data path and nftables rules left in place)'
        : 'stopped (lease and data path left in place for the next start)',
    );
  }
}
