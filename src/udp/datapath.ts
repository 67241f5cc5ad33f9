import { dirname, join } from 'node:path';
import type { Registry } from 'prom-client';
import type { NetworkConfig } from '../config/network-config.js';
import { UDP_OVERHEAD_IPV4, UDP_TUN_DEVICE, type Plan } from '../backend/types.js';
import { udpPeerTable } from '../backend/udp.js';
import { localLinkNames } from '../kernel/iproute.js';
import { ensureTunDevice, removeTunDevice, tunnelBindAddress, type TunParams } from '../kernel/udp-tunnel.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { defaultWorkers } from './helper.js';
import { stopHelper, UdpDataPath, type UdpDataPathStatus } from './supervisor.js';

/**
 * The udp backend's share of a node's data path (agent/node-datapath.ts calls it): the TUN device
 * (kernel layer) and weft-udp (supervised). The TUN device carries the pod MTU; weft-udp is told the
 * underlay's own limit (its MTU − 28), so a pod MTU raised above what the underlay carries is answered
 * with ICMP "fragmentation needed" instead of lost. The route into the device is the data plane's.
 */

export interface UdpNodeSetup {
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

export class UdpNodeDataPath {
  private sup: UdpDataPath | undefined;
  private tun: TunParams | undefined;
  /** This node's subnet, as the last prepare() was given it: the data path's "own" entry. */
  private own: Cidr | undefined;

  constructor(private readonly s: UdpNodeSetup) {}

  /** For the lease (again): the TUN device with the pod MTU and the subnet's .0, and weft-udp on it. */
  async prepare(subnet: Cidr, podMtu: number): Promise<void> {
    const s = this.s;
    const tun = { name: UDP_TUN_DEVICE, mtu: podMtu, address: formatIPv4(subnet.ip) };
    this.tun = tun;
    this.own = subnet;
    await ensureTunDevice(tun, s.log);
    if (this.sup) return;
    this.sup = new UdpDataPath({
      settings: {
        tun: UDP_TUN_DEVICE,
        local: await tunnelBindAddress(s.iface, s.publicIP),
        port: s.config.backend.port,
        mtu: s.ifaceMtu - UDP_OVERHEAD_IPV4,
        batch: s.config.backend.batch,
        workers: s.config.backend.workers ?? defaultWorkers(),
      },
      logFile: join(dirname(s.subnetFile), 'weft-udp.log'),
      log: s.log.child({ part: 'udp' }),
      registry: s.registry,
      // Someone may have deleted the device meanwhile (weft-udp then exits): bring it back first.
      beforeStart: () => ensureTunDevice(this.tun!, s.log),
    });
    await this.sup.start();
  }

  /** The plan's udp peers, as weft-udp's peer table (swapped whole). */
  async update(plan: Plan): Promise<void> {
    if (this.own) await this.sup?.setPeers(this.own, udpPeerTable(plan));
  }

  readiness(): string[] {
    return this.sup ? this.sup.readiness() : ['udp data path not started yet'];
  }

  status(): UdpDataPathStatus | undefined {
    return this.sup?.status();
  }

  /** The agent stops or leaves: no more supervision; weft-udp keeps forwarding (for the next agent). */
  detach(): void {
    this.sup?.detach();
  }
}

/**
 * Removes a udp data path from this node: weft-udp asked to quit (killed if it does not), then the TUN
 * device with its address and routes. For another backend finding what udp left, and for leaving.
 * Without the device there is nothing to do (weft-udp exits when its device goes): the common case,
 * a node that never ran udp, costs one read of /proc and no process.
 */
export async function removeUdpDataPath(log: Logger): Promise<void> {
  if (!localLinkNames().has(UDP_TUN_DEVICE)) return;
  await stopHelper(UDP_TUN_DEVICE, log);
  if (await removeTunDevice(UDP_TUN_DEVICE))
    log.info({ device: UDP_TUN_DEVICE }, 'removed the udp TUN device');
}
