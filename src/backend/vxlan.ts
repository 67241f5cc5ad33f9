import { vtepOf, type Lease } from '../store/lease.js';
import { parseIPv4 } from '../util/ipv4.js';
import {
  VXLAN_OVERHEAD_IPV4,
  ownIpRefusal,
  vxlanDeviceName,
  type Backend,
  type NodeContext,
  type Plan,
} from './types.js';

/**
 * Flannel's VXLAN backend, wire-compatible (VNI 1, UDP 8472, VTEP MAC in BackendData): per peer a
 * permanent neighbour for the peer subnet's .0, an FDB entry sending that MAC to the peer's public IP,
 * and an on-link route of the peer subnet via .0 (reference/flannel.md §4.3).
 */
export class VxlanBackend implements Backend {
  readonly type = 'vxlan' as const;
  readonly usesVxlan = true;
  readonly overhead = VXLAN_OVERHEAD_IPV4;
  readonly cloud = 'none' as const;

  leaseAttrs(vtepMac: string | undefined) {
    return { BackendType: 'vxlan', BackendData: { VNI: this.vni, VtepMAC: vtepMac } };
  }

  constructor(private readonly vni: number) {}

  plan(ctx: NodeContext, _own: Lease, peers: readonly Lease[]): Plan {
    const plan: Plan = { routes: [], vteps: [], peers: [] };
    for (const p of peers) planVxlanPeer(ctx, this.vni, p, plan);
    return plan;
  }
}

/** Adds one peer's VXLAN path to the plan (shared with `auto`'s fallback). */
export function planVxlanPeer(ctx: NodeContext, vni: number, p: Lease, plan: Plan): void {
  const vtep = vtepOf(p.attrs);
  const remote = parseIPv4(p.attrs.PublicIP);
  if (!vtep || remote === undefined) {
    plan.peers.push({
      subnet: p.subnet,
      publicIP: p.attrs.PublicIP,
      path: 'unreachable',
      reason: `peer ${p.subnet.toString()} publishes no VXLAN endpoint (BackendType ${p.attrs.BackendType ?? 'none'}): run the same backend on every node`,
      // Most often a cluster switching backends, the peer not restarted yet: readiness waits a while.
      waiting: true,
    });
    return;
  }
  if (vtep.vni !== vni) {
    plan.peers.push({
      subnet: p.subnet,
      publicIP: p.attrs.PublicIP,
      path: 'unreachable',
      reason: `peer ${p.subnet.toString()} uses VNI ${vtep.vni}, this node VNI ${vni}: set one Backend.VNI for the network`,
    });
    return;
  }
  const own = ownIpRefusal(ctx, p, remote);
  if (own) {
    plan.peers.push(own);
    return;
  }
  const gw = p.subnet.ip; // the peer's VXLAN device holds <subnet>.0/32
  plan.vteps.push({ neighIP: gw, mac: vtep.mac, remote });
  plan.routes.push({ dst: p.subnet, via: gw, dev: vxlanDeviceName(vni), onlink: true });
  plan.peers.push({ subnet: p.subnet, publicIP: p.attrs.PublicIP, path: 'vxlan' });
}
