import { readFile } from 'node:fs/promises';
import type { NetworkConfig } from '../config/network-config.js';
import { parseSubnetEnv, writeSubnetEnv } from '../config/subnet-env.js';
import { podMtu, type Backend, type NodeContext, type Plan } from '../backend/types.js';
import { getLink } from '../kernel/iproute.js';
import { isReservation, vtepOf } from '../store/lease.js';
import { describeError } from '../util/errors.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { Timers } from '../util/timers.js';
import type { CloudOptions, CloudRouting } from './cloud.js';
import { CloudCoordinator, EarlierCloudRelease, findInCloud, wantsCloud } from './cloud-coordinator.js';
import type { FastPathMode } from '../config/fast-path-mode.js';
import type { DataPlane } from './dataplane.js';
import type { EtcdLink } from './etcd-link.js';
import type { PublicInterface } from './iface.js';
import { LeaseManager } from './lease-manager.js';
import type { AgentMetrics } from './metrics.js';
import { NodeDataPath } from './node-datapath.js';
import { OwnLease } from './own-lease.js';
import { probePath } from './path-probe.js';
import { PeerReadinessTracker, probeSourceOf } from './peer-readiness.js';
import { PeerSync } from './peer-sync.js';
import type { PeerChanges } from './peer-table.js';
import { Reconciler } from './reconciler.js';
import type { TrafficManager } from './traffic.js';

/** What the agent knows once it has read the network config and chosen its interface. */
export interface NodeFacts {
  config: NetworkConfig;
  backend: Backend;
  iface: PublicInterface;
}

export interface MemberSetup extends NodeFacts {
  subnetFile: string;
  ipMasq: boolean;
  /** The BPF fast path in effect (the agent's --fast-path, else the network config's FastPath). */
  fastPath: FastPathMode;
  /** Adopt Flannel's data path if flanneld left one on this node (else such a start is refused). */
  takeOverFlannel: boolean;
  lease: { ttlSeconds: number; renewMarginSeconds: number };
  resyncSeconds: number;
  cloud: CloudOptions | undefined;
  cloudResyncSeconds: number;
  etcd: EtcdLink;
  dp: DataPlane;
  traffic: TrafficManager;
  metrics: AgentMetrics;
  log: Logger;
  signal: AbortSignal;
  /** Readiness may have changed (the agent updates weft_ready). */
  readinessChanged(): void;
}

/** What backends plan from: the node's interface, address, config and (when routed by one) cloud. */
export function nodeContext(f: NodeFacts, cloud?: CloudRouting): NodeContext {
  return {
    iface: { name: f.iface.name, mtu: f.iface.mtu, prefixes: f.iface.prefixes },
    publicIP: f.iface.ip,
    config: f.config,
    ...(cloud && { cloud: cloud.view() }),
  };
}

/**
 * Prepares this node's membership: the data path of the chosen backend cleared of what another backend
 * left, the VTEP MAC chosen, the node found in the cloud when the backend routes through one.
 */
export async function prepareMember(s: MemberSetup): Promise<ClusterMember> {
  const datapath = new NodeDataPath({
    dp: s.dp,
    traffic: s.traffic,
    backend: s.backend,
    config: s.config,
    iface: s.iface,
    ipMasq: s.ipMasq,
    subnetFile: s.subnetFile,
    fastPath: s.fastPath,
    resyncSeconds: s.resyncSeconds,
    registry: s.metrics.registry,
    log: s.log.child({ part: 'dataplane' }),
  });
  const manager = new LeaseManager(s.etcd.registry, s.config, s.lease, s.log.child({ part: 'lease' }));
  await datapath.adoptLeftovers({
    takeOverFlannel: s.takeOverFlannel,
    subnetFile: s.subnetFile,
    leases: () => s.etcd.retry('list the subnet leases', async () => (await s.etcd.registry.list()).leases),
  });
  await datapath.removeOtherBackends();
  const publicIP = formatIPv4(s.iface.ip);
  let mac: string | undefined;
  if (s.backend.usesVxlan) {
    const prev = await s.etcd.retry("read this node's earlier lease", () => manager.previousAttrs(publicIP));
    mac = await datapath.chooseVtepMac(prev ? vtepOf(prev)?.mac : undefined);
  }
  const cloud = wantsCloud(s.backend, s.cloud)
    ? await findInCloud({
        options: s.cloud,
        etcd: s.etcd.registry.client,
        prefix: s.etcd.registry.prefix,
        nodeIp: publicIP,
        mac: mac ?? (await getLink(s.iface.name))?.address,
        required: s.backend.cloud === 'required',
        metrics: s.metrics,
        log: s.log.child({ part: 'cloud' }),
        signal: s.signal,
      })
    : undefined;
  // A backend that does not route through the cloud: what an earlier `neutron` made for this node goes.
  const release = cloud
    ? undefined
    : new EarlierCloudRelease({
        options: s.cloud,
        etcd: s.etcd.registry.client,
        prefix: s.etcd.registry.prefix,
        nodeIp: publicIP,
        mac: (await getLink(s.iface.name))?.address,
        metrics: s.metrics,
        log: s.log.child({ part: 'cloud' }),
        signal: s.signal,
      });
  return new ClusterMember(s, datapath, manager, mac, cloud, release);
}

/**
 * This node as a member of the cluster, once it knows its config: its own lease, the peer table kept
 * in step with the store, the reconciler that programs the data path from both, and the cloud
 * coordinator when the backend routes through a cloud. Everything here is wired in the constructor.
 */
export class ClusterMember {
  readonly lease: OwnLease;
  readonly peers: PeerSync;
  readonly reconciler: Reconciler;
  readonly cloud: CloudCoordinator | undefined;
  /** Per peer: pending, ready (reachable) or refused; cloud paths are probed. */
  readonly readiness: PeerReadinessTracker;
  private readonly timers = new Timers();
  private readonly log: Logger;

  constructor(
    private readonly s: MemberSetup,
    private readonly datapath: NodeDataPath,
    manager: LeaseManager,
    vtepMac: string | undefined,
    routing: CloudRouting | undefined,
    /** Releases what an earlier cloud-routed backend left in the cloud for this node. */
    readonly earlierCloud: EarlierCloudRelease | undefined = undefined,
  ) {
    this.log = s.log;
    this.lease = new OwnLease(
      manager,
      s.etcd,
      s.metrics,
      s.log.child({ part: 'lease' }),
      s.signal,
      {
        PublicIP: formatIPv4(s.iface.ip),
        PublicIPv6: null,
        ...s.backend.leaseAttrs(vtepMac, routing?.currentFlags()),
      },
      (old, now) => this.reacquired(old.subnet, now.subnet),
    );
    this.peers = new PeerSync(
      s.etcd,
      s.metrics,
      s.log,
      {
        me: () => this.lease.identity(),
        changed: (c) => this.peersChanged(c),
        ownMissing: () => this.background(this.lease.lost('missing from the store')),
        resynced: () => this.reconciler.request(),
      },
      s.signal,
    );
    this.reconciler = new Reconciler(
      {
        desired: () => this.desired(),
        apply: (plan) => this.datapath.apply(plan),
        afterPass: () => this.readiness.update(this.reconciler.peers),
      },
      s.metrics,
      s.log,
      s.signal,
    );
    this.cloud =
      routing &&
      new CloudCoordinator(
        routing,
        this.lease,
        s.backend,
        {
          peerIsBack: (ip) => this.peers.table.hasPublicIP(ip),
          reconcile: () => this.reconciler.request(),
        },
        s.log.child({ part: 'cloud' }),
        s.signal,
      );
    this.readiness = new PeerReadinessTracker(
      { source: () => probeSourceOf(this.lease.current?.subnet), probe: (src, dst) => probePath(src, dst) },
      () => this.cloud !== undefined,
      s.log.child({ part: 'readiness' }),
      () => s.readinessChanged(),
    );
  }

  ctx(): NodeContext {
    return nodeContext(this.s, this.cloud?.routing);
  }

  /** Takes a lease, configures the node for it, lists the peers, programs the data path, then keeps at it. */
  async start(): Promise<void> {
    const s = this.s;
    const first = await this.lease.republish(
      'acquire a subnet lease',
      undefined,
      await previousSubnet(s.subnetFile),
    );
    this.datapath.leaseHeld(first);
    await this.configureForLease();
    const lease = this.lease.current ?? first;
    this.earlierCloud?.start();
    this.readiness.start(this.timers);
    await this.peers.resync('start');
    await this.reconciler.now();
    await this.datapath.settle();
    const pending = this.readiness.list().filter((p) => p.state === 'pending').length;
    this.log.info(
      {
        subnet: lease.subnet.toString(),
        peers: this.peers.table.size,
        podMtu: podMtu(this.ctx(), s.backend),
        ...(pending > 0 && { pendingPeers: pending }),
      },
      pending > 0 ? 'data path programmed; waiting for cloud paths to answer' : 'ready',
    );
    await this.lease.startRenewing(this.timers);
    this.timers.every(s.resyncSeconds * 1000, () => this.reconciler.request());
    this.timers.every(2000, () => void this.checkEtcd());
    this.timers.every(5000, () => void this.refreshCounters());
    this.cloud?.startResync(this.timers, s.cloudResyncSeconds);
  }

  /** Everything that depends on the lease: VXLAN device, subnet.env, forwarding, nftables, the cloud. */
  private async configureForLease(): Promise<void> {
    const s = this.s;
    const held = this.lease.current;
    if (!held) return;
    const mac = await this.datapath.ensureDevices(held.subnet, vtepOf(this.lease.attrs)?.mac);
    if (mac !== undefined && mac !== vtepOf(held.attrs)?.mac) {
      // The device could not take the MAC we published: publish the real one.
      await this.lease.republish('publish the VTEP MAC', {
        ...this.lease.attrs,
        ...s.backend.leaseAttrs(mac, this.cloud?.routing.currentFlags()),
      });
    }
    const subnet = (this.lease.current ?? held).subnet;
    await writeSubnetEnv(s.subnetFile, {
      network: s.config.network,
      subnet,
      gateway: subnet.ip + 1,
      mtu: podMtu(this.ctx(), s.backend),
      ipMasq: s.ipMasq,
    });
    await this.datapath.configureNode(subnet, this.cloud !== undefined);
    await this.cloud?.carry(subnet);
    await this.lease.updateTtlMetric();
  }

  private async reacquired(old: Cidr, now: Cidr): Promise<void> {
    if (!now.equals(old)) {
      this.peers.table.forget(now);
      this.readiness.clear(); // probes go from the new subnet's .0
    }
    await this.configureForLease();
    this.reconciler.request();
  }

  private peersChanged(c: PeerChanges): void {
    for (const o of c.own) {
      if (o.kind === 'updated') this.lease.observed(o.lease);
      else this.background(this.lease.lost(o.kind === 'deleted' ? 'deleted' : `taken by ${o.by}`));
    }
    // A peer whose lease is gone for good leaves cloud routes behind: any node may reap them.
    for (const gone of c.departed) this.cloud?.scheduleReap(gone.attrs.PublicIP);
    this.reconciler.request();
  }

  private desired(): Plan | undefined {
    const own = this.lease.current;
    return own && this.s.backend.plan(this.ctx(), own, this.peers.table.leases());
  }

  /** etcd liveness: drives readiness; on recovery, catch up with a full re-list (nodes that joined meanwhile). */
  private async checkEtcd(): Promise<void> {
    if ((await this.s.etcd.check()) === 'recovered')
      await this.peers.resync('etcd-recovered').catch((e: unknown) => this.peers.failed(e));
    this.s.readinessChanged();
  }

  private async refreshCounters(): Promise<void> {
    this.s.metrics.foreignOverlayDropped.set(await this.datapath.foreignDropped().catch(() => 0));
  }

  /** Work started from an event: a failure is one line, and none at all once the agent stops. */
  private background(p: Promise<void>): void {
    p.catch((e: unknown) => {
      if (!this.s.signal.aborted) this.log.error(`cannot re-acquire this node's lease: ${describeError(e)}`);
    });
  }

  status(): Record<string, unknown> {
    const own = this.lease.current;
    return {
      lease: own && {
        subnet: own.subnet.toString(),
        reservation: isReservation(own),
        leaseId: own.leaseId,
        vtepMac: vtepOf(own.attrs)?.mac,
      },
      peers: this.readiness.list(),
      corruptLeases: this.peers.table.corruptEntries(),
      lastReconcile: this.reconciler.lastReport,
      cloud: this.cloud?.routing.status(),
      ...(this.earlierCloud && { earlierCloud: this.earlierCloud.status() }),
      takeover: this.datapath.takeoverStatus(),
      dataPath: this.datapath.status(),
      fastPath: this.datapath.fastPathStatus() ?? { mode: 'none', active: false },
    };
  }

  /**
   * Why the programmed data path cannot carry traffic (yet): a native data path that is down (weft-udp),
   * cloud paths that have not answered their probe (ready means reachable: peer-readiness.ts).
   */
  dataPathReadiness(): string[] {
    return [...this.datapath.readiness(), ...(this.reconciler.programmed ? this.readiness.reasons() : [])];
  }

  /**
   * Stops the periodic work and the watch; waits for a running pass. The kernel is left as it is: a
   * native data path (weft-udp) keeps forwarding, unsupervised, and the BPF fast path, no longer fed,
   * until the next agent adopts them.
   */
  async stop(): Promise<void> {
    this.timers.clear();
    this.cloud?.stop();
    await this.peers.stop();
    await this.reconciler.idle().catch(() => undefined);
    this.datapath.detach();
  }

  /**
   * Leaves the cluster: cloud objects and the lease released, a native data path no longer supervised
   * (the agent then removes the data path, weft-udp included, without it being restarted).
   */
  async leave(): Promise<void> {
    this.timers.clear();
    this.cloud?.stop();
    await this.earlierCloud?.finish();
    this.datapath.detach();
    await this.peers.stop();
    await this.cloud?.releaseAll();
    await this.lease.release();
  }
}

async function previousSubnet(subnetFile: string): Promise<Cidr | undefined> {
  try {
    return parseSubnetEnv(await readFile(subnetFile, 'utf8'), subnetFile).subnet;
  } catch {
    return undefined;
  }
}
