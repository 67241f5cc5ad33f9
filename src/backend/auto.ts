import type { Lease } from '../store/lease.js';
import { parseIPv4 } from '../util/ipv4.js';
import { planDirectPeer } from './host-gw.js';
import { planCloudPeer } from './neutron.js';
import {
  VXLAN_OVERHEAD_IPV4,
  isOnLink,
  type Backend,
  type CloudFlags,
  type NodeContext,
  type Plan,
} from './types.js';
import { planVxlanPeer } from './vxlan.js';

/**
 * auto: per peer, the cheapest path that works — with a cloud provider, the cloud-routed path when both
 * ends are ready (direct on the same subnet, via the router across subnets); without one, a direct
 * route when the peer is on-link; VXLAN otherwise. It publishes itself as a VXLAN endpoint, so that
 * Flannel vxlan nodes and weft vxlan nodes reach it too (like Flannel's DirectRouting). The pod MTU is
 * the VXLAN one, because some peers may be reached encapsulated.
 */
export class AutoBackend implements Backend {
  readonly type = 'auto' as const;
  readonly usesVxlan = true;
  readonly overhead = VXLAN_OVERHEAD_IPV4;
  readonly cloud = 'optional' as const;

  constructor(private readonly vni: number) {}

  leaseAttrs(vtepMac: string | undefined, cloud: CloudFlags | undefined) {
    return {
      BackendType: 'vxlan',
      BackendData: { VNI: this.vni, VtepMAC: vtepMac, ...(cloud && { Cloud: cloud }) },
    };
  }

  plan(ctx: NodeContext, _own: Lease, peers: readonly Lease[]): Plan {
    const plan: Plan = { routes: [], vteps: [], peers: [] };
    for (const p of peers) {
      if (ctx.cloud) {
        if (planCloudPeer(ctx, p, plan) === undefined) continue;
      } else {
        const ip = parseIPv4(p.attrs.PublicIP);
        if (ip !== undefined && isOnLink(ctx, ip) && planDirectPeer(ctx, p, plan)) continue;
      }
      planVxlanPeer(ctx, this.vni, p, plan);
    }
    return plan;
  }
}
