import type { Registry } from 'prom-client';
import type { NetworkConfig } from '../config/network-config.js';
import { UDP_TUN_DEVICE, type Backend, type Plan } from '../backend/types.js';
import { removeTunDevice } from '../kernel/udp-tunnel.js';
import { UdpBackendDataPath } from '../udp/datapath.js';
import { stopHelper } from '../udp/supervisor.js';
import type { Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';

/**
 * A backend's data path beyond what the data plane programs (routes, VXLAN entries): for udp, a TUN
 * device and the native process that moves its packets. The agent calls these hooks at fixed moments
 * of its life; the other backends have nothing here but must remove what udp left behind.
 */
export interface BackendDataPath {
  /** After the lease is known (again): devices and processes the plan's routes need. */
  prepare(subnet: Cidr, podMtu: number): Promise<void>;
  /** After every reconcile pass: the data path's share of the plan. */
  update(plan: Plan, own: Cidr): Promise<void>;
  /** Why the data path cannot carry traffic now (empty when it can). */
  readiness(): string[];
  /** For /status and `weft status`. */
  status(): unknown;
  /** The agent stops: the data path keeps running for the next agent. */
  detach(): void;
  /** The node leaves the cluster: the data path goes. */
  remove(): Promise<void>;
}

export interface DataPathContext {
  config: NetworkConfig;
  /** The underlay interface, its MTU and this node's public IP. */
  iface: string;
  ifaceMtu: number;
  publicIP: string;
  /** weft-udp's log goes beside the subnet file. */
  subnetFile: string;
  log: Logger;
  registry: Registry;
}

export function createBackendDataPath(backend: Backend, ctx: DataPathContext): BackendDataPath {
  return backend.type === 'udp' ? new UdpBackendDataPath(ctx) : new NoDataPath(ctx.log);
}

/** Kernel-only backends: on start they remove a udp data path an earlier run of the agent left. */
class NoDataPath implements BackendDataPath {
  private cleaned = false;
  constructor(private readonly log: Logger) {}
  async prepare(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    await this.remove();
  }
  async update(): Promise<void> {}
  readiness(): string[] {
    return [];
  }
  status(): unknown {
    return undefined;
  }
  detach(): void {}
  async remove(): Promise<void> {
    await stopHelper(UDP_TUN_DEVICE, this.log);
    if (await removeTunDevice(UDP_TUN_DEVICE))
      this.log.info({ device: UDP_TUN_DEVICE }, 'removed the udp TUN device no longer used');
  }
}
