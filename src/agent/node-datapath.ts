import type { NetworkConfig } from '../config/network-config.js';
import { vxlanDeviceName, type Backend, type Plan } from '../backend/types.js';
import { sysctlRead, sysctlWrite } from '../kernel/iproute.js';
import { setProbeAddress } from '../kernel/probe.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { randomMac, type ApplyReport, type DataPlane } from './dataplane.js';
import type { PublicInterface } from './iface.js';
import type { TrafficManager } from './traffic.js';

/**
 * What a backend needs from the kernel of this node, in one place: the devices it owns (the VXLAN
 * device today), node settings (forwarding), the traffic rules, and applying a plan. The agent's
 * other parts never touch DataPlane or TrafficManager directly, so a new data path (the udp helper,
 * the BPF fast path) hooks in here: where devices are made, where a plan is applied, where it is torn
 * down.
 */
export class NodeDataPath {
  constructor(
    private readonly dp: DataPlane,
    private readonly traffic: TrafficManager,
    private readonly backend: Backend,
    private readonly config: NetworkConfig,
    private readonly iface: PublicInterface,
    private readonly ipMasq: boolean,
    private readonly log: Logger,
  ) {}

  /** The device this backend owns, if any (undefined: remove every weft VXLAN device). */
  private vxlanDevice(): string | undefined {
    return this.backend.usesVxlan ? vxlanDeviceName(this.config.backend.vni) : undefined;
  }

  /** The backend may have changed since the last run: remove what the old one owned. */
  async removeOtherBackends(): Promise<void> {
    await this.dp.removeVxlanDevices(this.vxlanDevice());
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

  /** Creates or repairs the backend's devices for the lease; returns the VTEP MAC the device really has. */
  async ensureDevices(subnet: Cidr, mac: string | undefined): Promise<string | undefined> {
    if (!this.backend.usesVxlan) return undefined;
    const c = this.config;
    return this.dp.ensureVxlan({
      vni: c.backend.vni,
      port: c.backend.port,
      local: this.iface.ip,
      underlay: this.iface.name,
      mtu: (c.backend.mtu ?? this.iface.mtu) - this.backend.overhead,
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
    await this.traffic.ensureRules({
      network: this.config.network,
      subnet,
      ipMasq: this.ipMasq,
      overlayPort: this.backend.usesVxlan ? this.config.backend.port : undefined,
    });
    // ARP from the node's own address, not a pod-range one: cloud anti-spoofing checks ARP senders too.
    if (cloudRouted) await sysctlWrite('net.ipv4.conf.all.arp_announce', '2');
    // Cloud paths are proved by a ping between pod subnets' .0 (peer-readiness.ts): without a VXLAN
    // device to hold it, this node's .0 lives on the loopback, labelled as weft's.
    const failed = await setProbeAddress(
      cloudRouted && !this.backend.usesVxlan ? formatIPv4(subnet.ip) : undefined,
    );
    for (const f of failed) this.log.warn(`cannot set the cloud probe address on lo: ${f}`);
  }

  /** Brings the kernel to the plan; the overlay port then accepts exactly the plan's tunnel endpoints. */
  async apply(plan: Plan): Promise<ApplyReport> {
    const report = await this.dp.apply(plan, this.vxlanDevice());
    if (this.backend.usesVxlan) await this.traffic.setPeers(plan.vteps.map((v) => formatIPv4(v.remote)));
    return report;
  }

  foreignDropped(): Promise<number> {
    return this.traffic.foreignDropped();
  }
}

/** The node leaves the cluster: every route, neighbour, FDB entry, device and rule weft owns removed. */
export async function releaseDataPath(dp: DataPlane, traffic: TrafficManager): Promise<void> {
  await dp.apply({ routes: [], vteps: [], peers: [] }, undefined).catch(() => undefined);
  await dp.removeVxlanDevices().catch(() => undefined);
  await setProbeAddress(undefined).catch(() => undefined);
  await traffic.remove().catch(() => undefined);
}
