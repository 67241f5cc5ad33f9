import type { Plan } from '../backend/types.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';

/**
 * What the fast path should know, derived from the backend's plan (pure: unit-tested without a
 * kernel). Every route the data plane programs to a peer's pod subnet becomes one map entry: over
 * VXLAN (the program encapsulates as the VXLAN device would, the inner frame addressed to the peer's
 * VTEP MAC, the datagram to the peer's VTEP address, out of the underlay) or routed on the underlay
 * (bpf_redirect_neigh to the route's next hop, direct or the cloud router). The program sits on the
 * devices pod traffic from peers arrives on: with VXLAN the underlay too, where it decapsulates.
 */
export interface FastPathNode {
  subnet: Cidr;
  /** The underlay interface. */
  underlay: string;
  /** The backend's VXLAN device and its endpoint (what the program encapsulates with), if it has one. */
  vxlan?: { dev: string; vni: number; port: number; local: string };
}

export interface FastPathPlan {
  /** `peer CIDR vxlan UNDERLAY MAC REMOTE` / `peer CIDR routed DEV NEXTHOP`, sorted. */
  peers: string[];
  /** Node devices that receive peers' pod traffic (the program goes on them). */
  netDevs: string[];
}

export function fastPathPlan(plan: Plan, node: FastPathNode): FastPathPlan {
  const vtep = new Map(plan.vteps.map((v) => [v.neighIP, v]));
  const peers: string[] = [];
  for (const r of plan.routes) {
    // A device route (udp: the cluster network into the TUN device) has no next hop to redirect to:
    // its packets go to the device the normal way.
    if (r.via === undefined) continue;
    if (r.dev === node.vxlan?.dev) {
      const v = vtep.get(r.via);
      if (v) peers.push(`peer ${r.dst.toString()} vxlan ${node.underlay} ${v.mac} ${formatIPv4(v.remote)}`);
    } else {
      peers.push(`peer ${r.dst.toString()} routed ${r.dev} ${formatIPv4(r.via)}`);
    }
  }
  // The VXLAN device (when there is one) always carries the program, even before the first peer:
  // something must hold the object while no pod does. So does the underlay: peers' packets arrive
  // there routed, or as VXLAN datagrams the program decapsulates.
  const netDevs = [...(node.vxlan ? [node.vxlan.dev] : []), node.underlay];
  return { peers: peers.sort(), netDevs };
}

/** The loader script that brings the fast path to the plan (one process, however many peers). */
export function syncScript(objectFile: string, node: FastPathNode, p: FastPathPlan): string[] {
  return [
    `load ${objectFile}`,
    `subnet ${node.subnet.toString()}`,
    node.vxlan
      ? `vxlan ${node.vxlan.dev} ${node.vxlan.vni} ${node.vxlan.port} ${node.vxlan.local}`
      : 'vxlan off',
    ...p.peers,
    'peers-end',
    `net-devs ${p.netDevs.join(' ')}`,
    'pods-sync',
  ];
}
