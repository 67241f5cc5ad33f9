import type { Lease } from '../store/lease.js';
import { parseIPv4 } from '../util/ipv4.js';
import { planDirectPeer } from './host-gw.js';
import { VXLAN_OVERHEAD_IPV4, isOnLink, type Backend, type NodeContext, type Plan } from './types.js';
import { planVxlanPeer } from './vxlan.js';

/**
 * auto: per peer, the cheapest path that works — a direct route when the peer is on-link, VXLAN
 * otherwise (the cloud-routed path joins when a cloud provider is configured). It publishes itself as a
 * VXLAN endpoint, so Flannel vxlan nodes and weft vxlan nodes can reach it, like Flannel's DirectRouting.
 * The pod MTU is the VXLAN one, because some peers may be reached encapsulated.
 */
export class AutoBackend implements Backend {
  readonly type = 'auto' as const;
  readonly usesVxlan = true;
  readonly overhead = VXLAN_OVERHEAD_IPV4;

  constructor(private readonly vni: number) {}

  leaseAttrs(vtepMac: string | undefined) {
    return { BackendType: 'vxlan', BackendData: { VNI: this.vni, VtepMAC: vtepMac } };
  }

  plan(ctx: NodeContext, _own: Lease, peers: readonly Lease[]): Plan {
    const plan: Plan = { routes: [], vteps: [], peers: [] };
    for (const p of peers) {
      const ip = parseIPv4(p.attrs.PublicIP);
      if (ip !== undefined && isOnLink(ctx, ip)) planDirectPeer(ctx, p, plan);
      else planVxlanPeer(ctx, this.vni, p, plan);
    }
    return plan;
  }
}
