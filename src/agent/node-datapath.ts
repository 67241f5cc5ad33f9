import type { Registry } from 'prom-client';
import type { NetworkConfig } from '../config/network-config.js';
import { podMtu, vxlanDeviceName, type Backend, type Plan } from '../backend/types.js';
import { FastPathDataPath, removeFastPath, type FastPathStatus } from '../fastpath/datapath.js';
import type { FastPathMode } from '../config/fast-path-mode.js';
import { listFdb, sysctlRead, sysctlWrite } from '../kernel/iproute.js';
import { setProbeAddress } from '../kernel/probe.js';
import type { Lease } from '../store/lease.js';
import { removeUdpDataPath, UdpNodeDataPath } from '../udp/datapath.js';
import type { UdpDataPathStatus } from '../udp/supervisor.js';
import { formatIPv4, parseIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { randomMac, type ApplyReport, type DataPlane } from './dataplane.js';
import type { PublicInterface } from './iface.js';
import { FlannelTakeover, type TakeoverSummary } from './takeover.js';
import type { TrafficManager } from './traffic.js';

export interface NodeDataPathSetup {
  dp: DataPlane;
  traffic: TrafficManager;
  backend: Backend;
  config: NetworkConfig;
  iface: PublicInterface;
  ipMasq: boolean;
  /** A native data path's log goes beside it (udp: weft-udp.log). */
  subnetFile: string;
  /** The BPF fast path in effect (the agent's --fast-path, else the network config's FastPath). */
  fastPath: FastPathMode;
  /** The agent's kernel resync period (the fast path's maps are rewritten at least this often). */
  resyncSeconds: number;
  /** Where a native data path's metrics are registered (udp's, the fast path's: read at scrape time). */
  registry: Registry;
  log: Logger;
}

/**
 * What a backend needs from the kernel of this node, in one place: the devices it owns (the VXLAN
 * device; udp's TUN device and the weft-udp process on it), node settings (forwarding), the traffic
 * rules, applying a plan, and the BPF fast path beside whichever backend runs (its programs attached
 * with the node settings, its maps given every plan applied). The agent's other parts never touch
 * DataPlane, TrafficManager, a native data path or the fast path directly: devices are made in
 * ensureDevices, a plan is applied in apply (routes and VXLAN entries by the data plane, udp's peer
 * table by weft-udp, the peers' entries by the fast path), what another run left is
 * removed in removeOtherBackends, and releaseDataPath tears it all down.
 */
export class NodeDataPath {
  /** Flannel's data path being taken over on this start (--take-over-flannel), if it was here. */
  private takeover: FlannelTakeover | undefined;
  private readonly dp: DataPlane;
  private readonly traffic: TrafficManager;
  private readonly backend: Backend;
  private readonly config: NetworkConfig;
  private readonly iface: PublicInterface;
  private readonly ipMasq: boolean;
  private readonly log: Logger;
  /** udp only: the TUN device and weft-udp. */
  private readonly udp: UdpNodeDataPath | undefined;
  /** The BPF fast path, unless it is off (`none`). */
  private readonly fastPath: FastPathDataPath | undefined;

  constructor(s: NodeDataPathSetup) {
    this.dp = s.dp;
    this.traffic = s.traffic;
    this.backend = s.backend;
    this.config = s.config;
    this.iface = s.iface;
    this.ipMasq = s.ipMasq;
    this.log = s.log;
    this.udp =
      s.backend.type === 'udp'
        ? new UdpNodeDataPath({
            config: s.config,
            iface: s.iface.name,
            ifaceMtu: s.iface.mtu,
            publicIP: formatIPv4(s.iface.ip),
            subnetFile: s.subnetFile,
            log: s.log,
            registry: s.registry,
          })
        : undefined;
    const vxlanDev = this.vxlanDevice();
    this.fastPath =
      s.fastPath === 'none'
        ? undefined
        : new FastPathDataPath({
            mode: s.fastPath,
            underlay: s.iface.name,
            vxlan: vxlanDev
              ? {
                  dev: vxlanDev,
                  vni: s.config.backend.vni,
                  port: s.config.backend.port,
                  local: formatIPv4(s.iface.ip),
                }
              : undefined,
            resyncSeconds: s.resyncSeconds,
            registry: s.registry,
            log: s.log.child({ part: 'fastpath' }),
          });
  }

  /** The device this backend owns, if any (undefined: remove every weft VXLAN device). */
  private vxlanDevice(): string | undefined {
    return this.backend.usesVxlan ? vxlanDeviceName(this.config.backend.vni) : undefined;
  }

  /** The backend may have changed since the last run: remove what the old one owned (and the fast path, when off). */
  async removeOtherBackends(): Promise<void> {
    await this.dp.removeVxlanDevices(this.vxlanDevice());
    if (!this.udp) await removeUdpDataPath(this.log);
    if (!this.fastPath) await removeFastPath(this.log, 'off (--fast-path none)');
  }

  /**
   * The VTEP MAC to publish: the existing device's when it is still usable (a restart must keep the
   * peers' FDB entries valid), else the one published before, else a new one. Undefined without VXLAN.
   */
  async chooseVtepMac(published: string | undefined): Promise<string | undefined> {
    if (!this.backend.usesVxlan) return undefined;
    const existing = await this.dp.compatibleVxlanMac({
      vni: this.config.backend.vni,
      port: this.config.backend.port,
      local: this.iface.ip,
      underlay: this.iface.name,
    });
    return existing ?? published ?? randomMac();
  }

  /** The MTU of the backend's tunnel device and of the pods: the underlay's less the encapsulation. */
  private tunnelMtu(): number {
    return podMtu({ config: this.config, iface: this.iface }, this.backend);
  }

  /**
   * Creates or repairs the backend's devices for the lease (udp: and starts or adopts weft-udp);
   * returns the VTEP MAC the VXLAN device really has.
   */
  async ensureDevices(subnet: Cidr, mac: string | undefined): Promise<string | undefined> {
    if (this.udp) await this.udp.prepare(subnet, this.tunnelMtu());
    if (!this.backend.usesVxlan) return undefined;
    const c = this.config;
    return this.dp.ensureVxlan({
      vni: c.backend.vni,
      port: c.backend.port,
      local: this.iface.ip,
      underlay: this.iface.name,
      mtu: this.tunnelMtu(),
      subnet,
      mac,
    });
  }

  /** Node settings and traffic rules for the lease (forwarding, masquerade, the overlay port lock). */
  async configureNode(subnet: Cidr, cloudRouted: boolean): Promise<void> {
    if ((await sysctlRead('net.ipv4.ip_forward')) !== '1') {
      await sysctlWrite('net.ipv4.ip_forward', '1');
      this.log.info('enabled net.ipv4.ip_forward: pod traffic is forwarded by this node');
    }
    const vxlanDev = this.vxlanDevice();
    if (vxlanDev) this.traffic.seedPeers(await tunnelEndpoints(vxlanDev));
    await this.traffic.ensureRules({
      network: this.config.network,
      subnet,
      ipMasq: this.ipMasq,
      overlayPort: this.backend.usesVxlan ? this.config.backend.port : undefined,
    });
    await this.takeover?.afterRules(); // Flannel's rules go once weft's are in
    // ARP from the node's own address, not a pod-range one: cloud anti-spoofing checks ARP senders too.
    if (cloudRouted) await sysctlWrite('net.ipv4.conf.all.arp_announce', '2');
    // Cloud paths are proved by a ping between pod subnets' .0 (peer-readiness.ts): without a VXLAN
    // device to hold it, this node's .0 lives on the loopback, labelled as weft's.
    const failed = await setProbeAddress(
      cloudRouted && !this.backend.usesVxlan ? formatIPv4(subnet.ip) : undefined,
    );
    for (const f of failed) this.log.warn(`cannot set the cloud probe address on lo: ${f}`);
    // After the rules: what the fast path leaves to the stack (NAT'd flows, the outside) is handled there.
    await this.fastPath?.start(subnet);
  }

  /**
   * Brings the kernel to the plan; the overlay port then accepts exactly the plan's tunnel endpoints
   * (vxlan), weft-udp forwards to exactly the plan's udp peers, and the fast path redirects to exactly
   * the plan's peers (after the routes and entries it relies on).
   */
  async apply(plan: Plan): Promise<ApplyReport> {
    const report = await this.dp.apply(plan, this.vxlanDevice());
    if (this.backend.usesVxlan) await this.traffic.setPeers(plan.vteps.map((v) => formatIPv4(v.remote)));
    await this.udp?.update(plan);
    await this.fastPath?.update(plan, report.added + report.removed > 0);
    return report;
  }

  foreignDropped(): Promise<number> {
    return this.traffic.foreignDropped();
  }

  /** Why a native data path cannot carry traffic now (empty when it can, or when there is none). */
  readiness(): string[] {
    return this.udp?.readiness() ?? [];
  }

  /** A native data path's process, restarts and counters, for /status and `weft status`. */
  status(): UdpDataPathStatus | undefined {
    return this.udp?.status();
  }

  /** The fast path's mode, whether it is attached (or why not) and where, for /status and `weft status`. */
  fastPathStatus(): FastPathStatus | undefined {
    return this.fastPath?.status();
  }

  /**
   * The agent stops (or leaves): a native data path is no longer supervised, the fast path no longer
   * fed, but both keep forwarding (for the next agent).
   */
  detach(): void {
    this.udp?.detach();
    this.fastPath?.detach();
  }

  // ------------------------------------------- what another data path left here (issue 14: Flannel)

  /**
   * Before weft makes anything on this node: Flannel's data path is adopted (--take-over-flannel: its
   * VXLAN device renamed to weft's, see takeover.ts) or the start refused in one line naming what was
   * found; so is another program's VXLAN device on weft's VNI and port.
   */
  async adoptLeftovers(o: {
    takeOverFlannel: boolean;
    subnetFile: string;
    leases: () => Promise<Lease[]>;
  }): Promise<void> {
    this.takeover = await FlannelTakeover.prepare({
      allowed: o.takeOverFlannel,
      usesVxlan: this.backend.usesVxlan,
      vni: this.config.backend.vni,
      port: this.config.backend.port,
      iface: { name: this.iface.name, ip: formatIPv4(this.iface.ip) },
      network: this.config.network,
      subnetLen: this.config.subnetLen,
      ipMasq: this.ipMasq,
      subnetFile: o.subnetFile,
      leases: o.leases,
      log: this.log.child({ part: 'takeover' }),
    });
  }

  /** The lease held after the first acquisition: on a takeover, whether it is Flannel's. */
  leaseHeld(lease: Lease): void {
    this.takeover?.leaseHeld(lease);
  }

  /** After the first reconcile: what Flannel left and weft did not take over is removed. */
  async settle(): Promise<void> {
    await this.takeover?.finish();
  }

  takeoverStatus(): TakeoverSummary | undefined {
    return this.takeover?.summary();
  }
}

/** The remote VTEPs a VXLAN device has FDB entries for (what it carried traffic with until now). */
async function tunnelEndpoints(dev: string): Promise<string[]> {
  const fdb = await listFdb(dev);
  return [...new Set(fdb.flatMap((e) => (e.dst && parseIPv4(e.dst) !== undefined ? [e.dst] : [])))];
}

/**
 * The node leaves the cluster: every route, neighbour, FDB entry, device, data path process, BPF
 * program and rule weft owns removed, whatever the backend (the caller has detached a supervised data
 * path first). The fast path goes first: it must not redirect to a peer whose route and entries are gone.
 */
export async function releaseDataPath(dp: DataPlane, traffic: TrafficManager, log: Logger): Promise<void> {
  await removeFastPath(log, 'removed (the node left)');
  await dp.apply({ routes: [], vteps: [], peers: [] }, undefined).catch(() => undefined);
  await dp.removeVxlanDevices().catch(() => undefined);
  await setProbeAddress(undefined).catch(() => undefined);
  await removeUdpDataPath(log).catch(() => undefined);
  await traffic.remove().catch(() => undefined);
}
