import { dirname, join } from 'node:path';
import type { BackendDataPath, DataPathContext } from '../agent/backend-datapath.js';
import { UDP_OVERHEAD_IPV4, UDP_TUN_DEVICE, type Plan } from '../backend/types.js';
import { udpPeerTable } from '../backend/udp.js';
import { ensureTunDevice, removeTunDevice, tunnelBindAddress, type TunParams } from '../kernel/udp-tunnel.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';
import { defaultWorkers } from './helper.js';
import { stopHelper, UdpDataPath } from './supervisor.js';

/**
 * The udp backend's data path: the TUN device (kernel layer) and weft-udp (supervised). The TUN device
 * carries the pod MTU; weft-udp is told the underlay's own limit (its MTU − 28), so a pod MTU raised
 * above what the underlay carries is answered with ICMP "fragmentation needed" instead of lost.
 */
export class UdpBackendDataPath implements BackendDataPath {
  private sup: UdpDataPath | undefined;
  private tun: TunParams | undefined;

  constructor(private readonly ctx: DataPathContext) {}

  async prepare(subnet: Cidr, podMtu: number): Promise<void> {
    const c = this.ctx;
    const tun = { name: UDP_TUN_DEVICE, mtu: podMtu, address: formatIPv4(subnet.ip) };
    this.tun = tun;
    await ensureTunDevice(tun, c.log);
    if (this.sup) return;
    this.sup = new UdpDataPath({
      settings: {
        tun: UDP_TUN_DEVICE,
        local: await tunnelBindAddress(c.iface, c.publicIP),
        port: c.config.backend.port,
        mtu: c.ifaceMtu - UDP_OVERHEAD_IPV4,
        batch: c.config.backend.batch,
        workers: c.config.backend.workers ?? defaultWorkers(),
      },
      logFile: join(dirname(c.subnetFile), 'weft-udp.log'),
      log: c.log.child({ part: 'udp' }),
      registry: c.registry,
      // Someone may have deleted the device meanwhile (weft-udp then exits): bring it back first.
      beforeStart: () => ensureTunDevice(this.tun!, c.log),
    });
    await this.sup.start();
  }

  async update(plan: Plan, own: Cidr): Promise<void> {
    await this.sup?.setPeers(own, udpPeerTable(plan));
  }

  readiness(): string[] {
    return this.sup ? this.sup.readiness() : ['udp data path not started yet'];
  }

  status(): unknown {
    return this.sup?.status();
  }

  detach(): void {
    this.sup?.detach();
  }

  async remove(): Promise<void> {
    if (this.sup) await this.sup.stop();
    else await stopHelper(UDP_TUN_DEVICE, this.ctx.log);
    await removeTunDevice(UDP_TUN_DEVICE);
  }
}
