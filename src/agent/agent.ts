import type { Server } from 'node:http';
import { readFile } from 'node:fs/promises';
import { parseNetworkConfig, type NetworkConfig } from '../config/network-config.js';
import { parseSubnetEnv, writeSubnetEnv } from '../config/subnet-env.js';
import { createBackend } from '../backend/index.js';
import {
  PATH_KINDS,
  podMtu,
  vxlanDeviceName,
  type Backend,
  type NodeContext,
  type PeerPlan,
} from '../backend/types.js';
import { getLink, sysctlRead, sysctlWrite } from '../kernel/iproute.js';
import { configKey, isReservation, vtepOf, type Lease, type LeaseAttrs } from '../store/lease.js';
import { connectEtcd, SubnetRegistry, type WatchEvent } from '../store/registry.js';
import { ConfigError, describeError, WeftError } from '../util/errors.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { DataPlane, randomMac, type ApplyReport } from './dataplane.js';
import { serve, type StatusSource } from './http.js';
import { describeIface, selectPublicInterface, type PublicInterface } from './iface.js';
import { LeaseManager } from './lease-manager.js';
import { AgentMetrics } from './metrics.js';
import { TrafficManager } from './traffic.js';
import { CloudRouting, type CloudOptions } from './cloud.js';
import { CloudConfigError, OpenStackUnreachableError } from '../openstack/errors.js';
import { CloudProviderError } from '../cloud/provider.js';
import { startCniServer, type CniServer } from '../cni/server.js';
import { createBackendDataPath, type BackendDataPath } from './backend-datapath.js';

export interface AgentOptions {
  etcdEndpoints: string[];
  etcdPrefix: string;
  ifaces: string[];
  publicIp?: string;
  subnetFile: string;
  ipMasq: boolean;
  leaseTtlSeconds: number;
  renewMarginSeconds: number;
  /** Full kernel reconcile (drift repair) period. */
  resyncSeconds: number;
  healthzAddr?: string;
  statusSocket?: string;
  /** Serve weft-cni's fast path (the C shim forwards plugin calls to this process). */
  cniServer?: boolean;
  /** Cloud routing (neutron, or auto on a cloud): clouds.yaml cloud name and file, cluster name. */
  cloud?: CloudOptions;
  /** Period of the cloud re-check (pairs and routes repaired if they drifted). */
  cloudResyncSeconds?: number;
  /** Called after the node left the cluster (POST /leave); the CLI exits the process. */
  onLeft?: () => void;
  log: Logger;
}

const REAP_GRACE_MS = 15_000;
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Translates the etcd client's gRPC errors into a line an operator can act on. */
function etcdProblem(err: unknown, endpoints: string[]): string {
  const m = describeError(err);
  if (
    /UNAVAILABLE|ECONNREFUSED|No connection|deadline|DEADLINE|circuit|Broken|ETIMEDOUT|EHOSTUNREACH/i.test(m)
  ) {
    return `etcd at ${endpoints.join(',')} is unreachable`;
  }
  return m;
}

/**
 * The node agent: leases a subnet, publishes this node, watches the other leases and reconciles the
 * kernel to them. Start-up order follows Flannel's (reference/flannel.md §1.1); everything after the
 * lease is a reconcile loop, so the agent can be killed and restarted at any moment without touching
 * a kernel object that is already right.
 */
export class Agent implements StatusSource {
  readonly metrics = new AgentMetrics();
  readonly promRegistry = this.metrics.registry;
  private readonly log: Logger;
  private readonly dp: DataPlane;
  private readonly traffic: TrafficManager;
  private registry!: SubnetRegistry;
  private leases!: LeaseManager;
  private config!: NetworkConfig;
  private backend!: Backend;
  private iface!: PublicInterface;
  private attrs!: LeaseAttrs;
  private lease: Lease | undefined;
  private readonly peers = new Map<string, Lease>();
  private readonly corrupt = new Map<string, string>();
  private peerPlans: PeerPlan[] = [];
  private lastReport: (ApplyReport & { at: string; durationMs: number }) | undefined;
  private reportedUnreachable = new Map<string, string>();
  private etcdUp = false;
  private programmed = false;
  private stopWatch: (() => Promise<void>) | undefined;
  private watchRevision = '0';
  private timers: NodeJS.Timeout[] = [];
  private servers: Server[] = [];
  private reconcileWanted = false;
  private reconciling: Promise<void> | undefined;
  private lastTick = Date.now();
  private stopping = false;
  private cloud: CloudRouting | undefined;
  private cniServer: CniServer | undefined;
  // [backend data path] udp's TUN device and native process; nothing for the kernel-only backends.
  private dataPath: BackendDataPath | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.log = opts.log;
    this.dp = new DataPlane(opts.log.child({ part: 'dataplane' }));
    this.traffic = new TrafficManager(opts.log.child({ part: 'traffic' }));
  }

  // ---------------------------------------------------------------- StatusSource
  healthy(): boolean {
    return Date.now() - this.lastTick < 15_000;
  }

  ready(): { ready: boolean; reasons: string[] } {
    const reasons: string[] = [];
    if (!this.lease) reasons.push('no subnet lease yet');
    if (!this.programmed) reasons.push('data path not programmed yet');
    if (!this.etcdUp) reasons.push(`etcd at ${this.opts.etcdEndpoints.join(',')} is unreachable`);
    reasons.push(...(this.dataPath?.readiness() ?? [])); // [backend data path]
    return { ready: reasons.length === 0, reasons };
  }

  status(): unknown {
    return {
      ready: this.ready(),
      backend: this.config?.backend.type,
      iface: this.iface && {
        name: this.iface.name,
        publicIP: formatIPv4(this.iface.ip),
        mtu: this.iface.mtu,
      },
      podMtu: this.config && this.backend && this.iface ? podMtu(this.ctx(), this.backend) : undefined,
      lease: this.lease && {
        subnet: this.lease.subnet.toString(),
        reservation: isReservation(this.lease),
        leaseId: this.lease.leaseId,
        vtepMac: vtepOf(this.lease.attrs)?.mac,
      },
      etcd: { endpoints: this.opts.etcdEndpoints, up: this.etcdUp },
      peers: this.peerPlans.map((p) => ({ ...p, subnet: p.subnet.toString() })),
      corruptLeases: [...this.corrupt].map(([key, reason]) => ({ key, reason })),
      lastReconcile: this.lastReport,
      cloud: this.cloud?.status(),
      dataPath: this.dataPath?.status(), // [backend data path]
    };
  }

  // ---------------------------------------------------------------- lifecycle
  async start(): Promise<void> {
    const o = this.opts;
    this.timers.push(setInterval(() => (this.lastTick = Date.now()), 1000));
    this.servers = await serve(this, { tcp: o.healthzAddr, socket: o.statusSocket });
    if (o.cniServer) {
      // Not fatal: without it the weft-cni shim runs the Node plugin itself, only slower.
      this.cniServer = await startCniServer({ log: this.log.child({ part: 'cni' }) }).catch((e: unknown) => {
        this.log.warn(
          `cannot serve weft-cni's fast path: ${describeError(e)}; pods are attached the slow way`,
        );
        return undefined;
      });
    }
    this.registry = new SubnetRegistry(connectEtcd(o.etcdEndpoints), o.etcdPrefix);

    const text = await this.retry('read the network config', async () => {
      const t = await this.registry.getConfigText();
      if (t === undefined) {
        throw new WeftError(`network config not found at ${configKey(this.registry.prefix)}`, {
          hint: `write it, e.g. etcdctl put ${configKey(this.registry.prefix)} '{"Network":"10.244.0.0/16","Backend":{"Type":"vxlan"}}'`,
        });
      }
      return t;
    });
    this.etcdUp = true;
    this.config = parseNetworkConfig(text); // a ConfigError here is fatal: the caller prints it and exits
    this.backend = createBackend(this.config);
    this.iface = await selectPublicInterface(o.ifaces, o.publicIp);
    // [backend data path]
    this.dataPath = createBackendDataPath(this.backend, {
      config: this.config,
      iface: this.iface.name,
      ifaceMtu: this.iface.mtu,
      publicIP: formatIPv4(this.iface.ip),
      subnetFile: o.subnetFile,
      log: this.log,
      registry: this.promRegistry,
    });
    this.log.info(
      {
        backend: this.backend.type,
        iface: describeIface(this.iface),
        network: this.config.network.toString(),
      },
      'starting',
    );
    this.leases = new LeaseManager(
      this.registry,
      this.config,
      { ttlSeconds: o.leaseTtlSeconds, renewMarginSeconds: o.renewMarginSeconds },
      this.log.child({ part: 'lease' }),
    );

    // The backend may have changed since the last run: remove what the old one owned.
    await this.dp.removeVxlanDevices(
      this.backend.usesVxlan ? vxlanDeviceName(this.config.backend.vni) : undefined,
    );
    let mac: string | undefined;
    if (this.backend.usesVxlan) {
      const publicIP = formatIPv4(this.iface.ip);
      const prev = await this.retry("read this node's earlier lease", () =>
        this.leases.previousAttrs(publicIP),
      );
      mac =
        (await this.dp.compatibleVxlanMac({
          vni: this.config.backend.vni,
          port: this.config.backend.port,
          local: this.iface.ip,
          underlay: this.iface.name,
        })) ??
        (prev ? vtepOf(prev)?.mac : undefined) ??
        randomMac();
    }
    if (
      this.backend.cloud === 'required' ||
      (this.backend.cloud === 'optional' && cloudConfigured(o.cloud))
    ) {
      this.cloud = await this.initCloud(mac);
    }
    this.attrs = {
      PublicIP: formatIPv4(this.iface.ip),
      PublicIPv6: null,
      ...this.backend.leaseAttrs(mac, this.cloud?.currentFlags()),
    };
    const previous = await this.previousSubnet();
    this.lease = await this.retry('acquire a subnet lease', () => this.leases.acquire(this.attrs, previous));
    await this.configureForLease();

    await this.resyncFromStore('start');
    await this.reconcileNow();
    this.log.info(
      {
        subnet: this.lease.subnet.toString(),
        peers: this.peers.size,
        podMtu: podMtu(this.ctx(), this.backend),
      },
      'ready',
    );

    const renewMs = this.leases.renewEverySeconds() * 1000;
    this.timers.push(setTimeout(() => void this.renewLoop(renewMs), renewMs));
    this.timers.push(setInterval(() => this.requestReconcile(), o.resyncSeconds * 1000));
    this.timers.push(setInterval(() => void this.checkEtcd(), 2000));
    this.timers.push(setInterval(() => void this.refreshCounters(), 5000));
    if (this.cloud)
      this.timers.push(setInterval(() => void this.cloudResync(), (o.cloudResyncSeconds ?? 30) * 1000));
  }

  /**
   * Finds this node in the cloud. Configuration problems (no clouds.yaml, not a cloud port) are fatal
   * for `neutron` and make `auto` go on without the cloud; an unreachable cloud API is retried.
   */
  private async initCloud(mac: string | undefined): Promise<CloudRouting | undefined> {
    const c = new CloudRouting(
      this.opts.cloud ?? { cluster: 'weft' },
      this.log.child({ part: 'cloud' }),
      this.metrics,
    );
    const linkMac = mac ?? (await getLink(this.iface.name))?.address;
    let delay = 1000;
    for (;;) {
      try {
        await c.init(this.registry.client, this.registry.prefix, formatIPv4(this.iface.ip), linkMac);
        return c;
      } catch (err) {
        const fatal =
          err instanceof CloudConfigError ||
          (err instanceof CloudProviderError && err.code === 'NodePortNotFound');
        if (fatal && this.backend.cloud === 'required') throw err;
        if (fatal || this.stopping) {
          this.log.warn(
            `no cloud routing (VXLAN is used where routing would need the cloud): ${describeError(err)}`,
          );
          return undefined;
        }
        const why = err instanceof OpenStackUnreachableError ? err.message : describeError(err);
        this.log.warn(`cannot reach the cloud: ${why}; retrying in ${delay / 1000}s`);
        await sleep(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  private reaps = new Map<string, NodeJS.Timeout>();
  /**
   * Reaps a departed peer's cloud objects after a grace period, unless it came back meanwhile (a lease
   * deleted by an operator is re-acquired within seconds and must not lose its routes).
   */
  private scheduleReap(ip: string): void {
    clearTimeout(this.reaps.get(ip));
    this.reaps.set(
      ip,
      setTimeout(() => {
        this.reaps.delete(ip);
        const back = [...this.peers.values()].some((p) => p.attrs.PublicIP === ip);
        if (!back && !this.stopping) void this.cloud?.reap(ip);
      }, REAP_GRACE_MS),
    );
  }

  /** Re-asserts this node's cloud pairs and routes; republishes the lease when readiness changed. */
  private async cloudResync(): Promise<void> {
    if (!this.cloud || !this.lease || this.stopping) return;
    try {
      const flags = await this.cloud.ensureOwn(this.lease.subnet, formatIPv4(this.iface.ip));
      await this.publishCloudFlags(flags);
      this.requestReconcile();
    } catch (err) {
      this.log.warn(`cloud re-check failed: ${describeError(err)}`);
    }
  }

  private async publishCloudFlags(flags: { Pairs: boolean; Route: boolean }): Promise<void> {
    const next = { ...this.attrs, ...this.backend.leaseAttrs(vtepOf(this.attrs)?.mac, flags) };
    if (JSON.stringify(next) === JSON.stringify(this.attrs)) return;
    this.attrs = next;
    const subnet = this.lease!.subnet;
    this.lease = await this.retry('publish the cloud readiness in the lease', () =>
      this.leases.acquire(this.attrs, subnet),
    );
    this.log.info({ cloud: flags }, 'published cloud readiness');
  }

  /** The node leaves the cluster: cloud objects, lease and kernel state removed; then opts.onLeft (exit). */
  async leave(): Promise<void> {
    await this.leaveCluster();
    setTimeout(() => this.opts.onLeft?.(), 100);
  }

  private async leaveCluster(): Promise<void> {
    this.log.warn('leaving the cluster: releasing cloud routes and pairs, the lease and the data path');
    this.stopping = true;
    for (const t of this.timers) clearInterval(t);
    await this.stopWatch?.().catch(() => undefined);
    await this.cloud
      ?.releaseAll()
      .catch((e: unknown) => this.log.error(`cannot release cloud objects: ${describeError(e)}`));
    if (this.lease) await this.registry.casDelete(this.lease).catch(() => undefined);
    await this.dp.apply({ routes: [], vteps: [], peers: [] }, undefined).catch(() => undefined);
    await this.dp.removeVxlanDevices().catch(() => undefined);
    await this.dataPath?.remove().catch(() => undefined); // [backend data path]
    await this.traffic.remove().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    for (const t of [...this.timers, ...this.reaps.values()]) clearInterval(t);
    await this.stopWatch?.().catch(() => undefined);
    await this.reconciling?.catch(() => undefined);
    this.dataPath?.detach(); // [backend data path] it keeps forwarding for the next agent
    await this.traffic.remove().catch(() => undefined);
    await this.cniServer?.close().catch(() => undefined);
    for (const s of this.servers) s.close();
    await this.registry?.close().catch(() => undefined);
    this.log.info('stopped (lease and data path left in place for the next start)');
  }

  private ctx(): NodeContext {
    return {
      iface: { name: this.iface.name, mtu: this.iface.mtu, prefixes: this.iface.prefixes },
      publicIP: this.iface.ip,
      config: this.config,
      ...(this.cloud && { cloud: this.cloud.view() }),
    };
  }

  /** Retries an etcd-dependent step with backoff (0.5 s doubling to 10 s), one clear line per failure. */
  private async retry<T>(what: string, fn: () => Promise<T>): Promise<T> {
    let delay = 500;
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (err instanceof ConfigError || this.stopping) throw err;
        this.etcdUp = false;
        this.metrics.etcdUp.set(0);
        this.log.warn(
          { retryInSeconds: delay / 1000 },
          `cannot ${what}: ${etcdProblem(err, this.opts.etcdEndpoints)}; retrying in ${delay / 1000}s`,
        );
        await sleep(delay);
        delay = Math.min(delay * 2, 10_000);
      }
    }
  }

  private async previousSubnet(): Promise<Cidr | undefined> {
    try {
      const env = parseSubnetEnv(await readFile(this.opts.subnetFile, 'utf8'), this.opts.subnetFile);
      return env.subnet;
    } catch {
      return undefined;
    }
  }

  /** Everything that depends on the lease: VXLAN device address, subnet.env, forwarding, nftables. */
  private async configureForLease(): Promise<void> {
    const lease = this.lease!;
    const c = this.config;
    if (this.backend.usesVxlan) {
      const mac = await this.dp.ensureVxlan({
        vni: c.backend.vni,
        port: c.backend.port,
        local: this.iface.ip,
        underlay: this.iface.name,
        mtu: (c.backend.mtu ?? this.iface.mtu) - this.backend.overhead,
        subnet: lease.subnet,
        mac: vtepOf(this.attrs)?.mac,
      });
      if (mac !== vtepOf(lease.attrs)?.mac) {
        // The device could not take the MAC we published: publish the real one.
        this.attrs = { ...this.attrs, ...this.backend.leaseAttrs(mac, this.cloud?.currentFlags()) };
        this.lease = await this.retry('publish the VTEP MAC', () =>
          this.leases.acquire(this.attrs, lease.subnet),
        );
      }
    }
    await this.dataPath?.prepare(this.lease!.subnet, podMtu(this.ctx(), this.backend)); // [backend data path]
    await writeSubnetEnv(this.opts.subnetFile, {
      network: c.network,
      subnet: this.lease!.subnet,
      gateway: this.lease!.subnet.ip + 1,
      mtu: podMtu(this.ctx(), this.backend),
      ipMasq: this.opts.ipMasq,
    });
    if ((await sysctlRead('net.ipv4.ip_forward')) !== '1') {
      await sysctlWrite('net.ipv4.ip_forward', '1');
      this.log.info('enabled net.ipv4.ip_forward: pod traffic is forwarded by this node');
    }
    await this.traffic.ensureRules({
      network: c.network,
      subnet: this.lease!.subnet,
      ipMasq: this.opts.ipMasq,
      overlayPort: this.backend.usesVxlan ? c.backend.port : undefined,
    });
    if (this.cloud) {
      // ARP from the node's own address, not a pod-range one: cloud anti-spoofing checks ARP senders too.
      await sysctlWrite('net.ipv4.conf.all.arp_announce', '2');
      await this.publishCloudFlags(await this.cloud.ensureOwn(this.lease!.subnet, formatIPv4(this.iface.ip)));
    }
    await this.updateTtlMetric();
  }

  // ---------------------------------------------------------------- leases of the others
  private isOwn(subnet: Cidr): boolean {
    return this.lease !== undefined && this.lease.subnet.equals(subnet);
  }

  /** Re-lists every lease, replaces the peer table with it, and (re)starts the watch after it. */
  private async resyncFromStore(reason: string): Promise<void> {
    const listing = await this.retry('list the subnet leases', () => this.registry.list());
    this.metrics.watchResyncs.inc({ reason });
    this.peers.clear();
    this.corrupt.clear();
    for (const c of listing.corrupt) this.noteCorrupt(c.key, c.reason);
    let ownSeen = false;
    for (const l of listing.leases) {
      if (this.isOwn(l.subnet)) ownSeen = true;
      else this.peers.set(l.subnet.toKey(), l);
    }
    this.metrics.corruptLeases.set(this.corrupt.size);
    if (!ownSeen && this.lease) void this.ownLeaseLost('missing from the store');
    await this.stopWatch?.().catch(() => undefined);
    this.watchRevision = String(BigInt(listing.revision) + 1n);
    this.stopWatch = await this.retry('watch the subnet leases', () =>
      this.registry.watch(this.watchRevision, {
        onEvents: (evs, rev) => this.onEvents(evs, rev),
        onLost: (why) => {
          this.log.warn({ reason: why }, 'lease watch cancelled (e.g. compacted revision): re-listing');
          void this.resyncFromStore('watch-lost').then(() => this.requestReconcile());
        },
        onDisconnected: (why) => this.log.debug({ reason: why }, 'lease watch disconnected; reconnecting'),
      }),
    );
    this.requestReconcile();
  }

  private noteCorrupt(key: string, reason: string): void {
    if (this.corrupt.get(key) !== reason) this.log.warn({ key, reason }, `skipping lease ${key}: ${reason}`);
    this.corrupt.set(key, reason);
  }

  private onEvents(events: WatchEvent[], revision: string): void {
    this.watchRevision = revision;
    for (const e of events) {
      if (e.type === 'corrupt') {
        this.noteCorrupt(e.entry.key, e.entry.reason);
        const s = e.entry.key.split('/').pop() ?? '';
        this.peers.delete(s);
      } else if (e.type === 'delete') {
        this.corrupt.delete(e.key);
        if (this.isOwn(e.subnet)) void this.ownLeaseLost('deleted');
        else {
          const gone = this.peers.get(e.subnet.toKey());
          this.peers.delete(e.subnet.toKey());
          // A peer whose lease is gone for good leaves cloud routes behind: any node may reap them.
          if (gone && this.cloud) this.scheduleReap(gone.attrs.PublicIP);
        }
      } else {
        this.corrupt.delete(`${this.registry.prefix}/subnets/${e.lease.subnet.toKey()}`);
        if (this.isOwn(e.lease.subnet)) {
          if (e.lease.attrs.PublicIP !== this.attrs.PublicIP)
            void this.ownLeaseLost(`taken by ${e.lease.attrs.PublicIP}`);
          else this.lease = { ...e.lease };
        } else this.peers.set(e.lease.subnet.toKey(), e.lease);
      }
    }
    this.metrics.corruptLeases.set(this.corrupt.size);
    this.requestReconcile();
  }

  private reacquiring = false;
  /** This node's lease vanished (operator delete, expiry during an outage): take one again and carry on. */
  private async ownLeaseLost(how: string): Promise<void> {
    if (this.reacquiring || this.stopping) return;
    this.reacquiring = true;
    try {
      const old = this.lease!;
      this.log.warn(
        { subnet: old.subnet.toString() },
        `this node's lease ${old.subnet.toString()} was ${how}: re-acquiring it`,
      );
      this.metrics.leaseReacquired.inc();
      this.lease = await this.retry('re-acquire the subnet lease', () =>
        this.leases.acquire(this.attrs, old.subnet),
      );
      if (!this.lease.subnet.equals(old.subnet)) {
        this.log.warn(
          { old: old.subnet.toString(), new: this.lease.subnet.toString() },
          'the node got a different subnet: pods attached before keep their old addresses until re-attached',
        );
        this.peers.delete(this.lease.subnet.toKey());
      } else this.log.info({ subnet: this.lease.subnet.toString() }, 're-acquired the same subnet');
      await this.configureForLease();
      this.requestReconcile();
    } finally {
      this.reacquiring = false;
    }
  }

  private async renewLoop(everyMs: number): Promise<void> {
    if (this.stopping) return;
    let next = everyMs;
    try {
      if (this.lease && !isReservation(this.lease)) {
        const renewed = await this.leases.renew(this.lease);
        if (renewed) {
          this.lease = renewed;
          this.log.debug({ subnet: renewed.subnet.toString() }, 'lease renewed');
        } else await this.ownLeaseLost('changed underneath');
      }
      await this.updateTtlMetric();
    } catch (err) {
      next = Math.min(everyMs, 5000);
      this.log.warn(
        `cannot renew the subnet lease: ${etcdProblem(err, this.opts.etcdEndpoints)}; retrying in ${next / 1000}s`,
      );
    }
    if (!this.stopping) this.timers.push(setTimeout(() => void this.renewLoop(everyMs), next));
  }

  private async updateTtlMetric(): Promise<void> {
    if (!this.lease) return;
    if (isReservation(this.lease)) return void this.metrics.leaseTtl.set(-1);
    const left = await this.registry.ttlLeft(this.lease.leaseId).catch(() => undefined);
    if (left !== undefined) this.metrics.leaseTtl.set(left);
  }

  /** etcd liveness: drives readiness; on recovery, catch up with a full re-list (nodes that joined meanwhile). */
  private async checkEtcd(): Promise<void> {
    const up = await this.registry.healthy(1500);
    this.metrics.etcdUp.set(up ? 1 : 0);
    if (up && !this.etcdUp) {
      this.etcdUp = true;
      this.log.info('etcd reachable again: catching up');
      await this.resyncFromStore('etcd-recovered').catch((e: unknown) =>
        this.log.warn(`catch-up failed: ${describeError(e)}`),
      );
    } else if (!up && this.etcdUp) {
      this.etcdUp = false;
      this.log.warn(
        `etcd at ${this.opts.etcdEndpoints.join(',')} is unreachable: keeping the data path as it is and retrying`,
      );
    }
    this.metrics.ready.set(this.ready().ready ? 1 : 0);
  }

  private async refreshCounters(): Promise<void> {
    this.metrics.foreignOverlayDropped.set(await this.traffic.foreignDropped().catch(() => 0));
  }

  // ---------------------------------------------------------------- reconcile
  requestReconcile(): void {
    this.reconcileWanted = true;
    if (!this.reconciling) {
      this.reconciling = this.reconcileLoop().finally(() => (this.reconciling = undefined));
    }
  }

  private async reconcileNow(): Promise<void> {
    this.requestReconcile();
    while (this.reconciling) await this.reconciling;
  }

  private async reconcileLoop(): Promise<void> {
    while (this.reconcileWanted && !this.stopping) {
      this.reconcileWanted = false;
      await sleep(5); // coalesce a burst of watch events into one pass
      try {
        await this.reconcileOnce();
      } catch (err) {
        this.metrics.reconcileErrors.inc();
        this.log.error(`reconcile failed: ${describeError(err)}`);
      }
    }
  }

  private async reconcileOnce(): Promise<void> {
    if (!this.lease) return;
    const t0 = performance.now();
    const plan = this.backend.plan(this.ctx(), this.lease, [...this.peers.values()]);
    const report = await this.dp.apply(
      plan,
      this.backend.usesVxlan ? vxlanDeviceName(this.config.backend.vni) : undefined,
    );
    if (this.backend.usesVxlan) await this.traffic.setPeers(plan.vteps.map((v) => formatIPv4(v.remote)));
    await this.dataPath?.update(plan, this.lease.subnet); // [backend data path]
    const durationMs = performance.now() - t0;
    this.metrics.reconcileDuration.observe(durationMs / 1000);
    if (report.failures.length > 0) {
      this.metrics.reconcileErrors.inc(report.failures.length);
      for (const f of report.failures)
        this.log.error({ command: f.command }, `cannot program ${f.subject}: ${f.message}`);
    }
    // Peers that no path reaches are reported by name, once per distinct reason.
    const unreachable = new Map(
      plan.peers.filter((p) => p.path === 'unreachable').map((p) => [p.subnet.toString(), p.reason ?? '']),
    );
    for (const [s, why] of unreachable)
      if (this.reportedUnreachable.get(s) !== why) this.log.warn({ peer: s }, `peer unreachable: ${why}`);
    this.reportedUnreachable = unreachable;
    this.peerPlans = plan.peers;
    for (const path of PATH_KINDS)
      this.metrics.peers.set({ path }, plan.peers.filter((p) => p.path === path).length);
    this.lastReport = {
      ...report,
      at: new Date().toISOString(),
      durationMs: Math.round(durationMs * 10) / 10,
    };
    this.programmed = true;
    this.metrics.ready.set(this.ready().ready ? 1 : 0);
  }
}

/** Whether the operator pointed the agent at a cloud (auto uses one only then). */
function cloudConfigured(c: CloudOptions | undefined): boolean {
  return Boolean(c?.cloud || c?.configFile || process.env.OS_CLOUD || process.env.OS_AUTH_URL);
}
