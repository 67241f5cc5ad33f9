import type { Plan } from '../backend/types.js';
import { formatIPv4, type Cidr } from '../util/ipv4.js';

/**
 * What the fast path should know, derived from the backend's plan (pure: unit-tested without a
 * kernel). Every route the data plane programs to a peer's pod subnet becomes one map entry: over
 * the VXLAN device (the inner frame addressed to the peer's VTEP MAC, which the device's FDB sends
 * to the peer's node) or routed on the underlay (bpf_redirect_neigh to the route's next hop, direct
 * or the cloud router). The program sits on the devices pod traffic from peers arrives on.
 */
export interface FastPathNode {
  subnet: Cidr;
  /** The underlay interface. */
  underlay: string;
  /** The VXLAN device, when the backend uses one. */
  vxlanDev: string | undefined;
}

export interface FastPathPlan {
  /** `peer CIDR vxlan DEV MAC` / `peer CIDR routed DEV NEXTHOP`, sorted. */
  peers: string[];
  /** Node devices that receive peers' pod traffic (the program goes on them). */
  netDevs: string[];
}

export function fastPathPlan(plan: Plan, node: FastPathNode): FastPathPlan {
  const vtepMac = new Map(plan.vteps.map((v) => [v.neighIP, v.mac]));
  const peers: string[] = [];
  let routed = false;
  for (const r of plan.routes) {
    // A device route (udp: the cluster network into the TUN device) has no next hop to redirect to:
    // its packets go to the device the normal way.
    if (r.via === undefined) continue;
    if (r.dev === node.vxlanDev) {
      const mac = vtepMac.get(r.via);
      if (mac) peers.push(`peer ${r.dst.toString()} vxlan ${r.dev} ${mac}`);
    } else {
      routed = true;
      peers.push(`peer ${r.dst.toString()} routed ${r.dev} ${formatIPv4(r.via)}`);
    }
  }
  // The VXLAN device (when there is one) always carries the program, even before the first peer:
  // something must hold the object while no pod does.
  const netDevs = [
    ...(node.vxlanDev ? [node.vxlanDev] : []),
    ...(routed || !node.vxlanDev ? [node.underlay] : []),
  ];
  return { peers: peers.sort(), netDevs };
}

/** The loader script that brings the fast path to the plan (one process, however many peers). */
export function syncScript(objectFile: string, node: FastPathNode, p: FastPathPlan): string[] {
  return [
    `load ${objectFile}`,
    `subnet ${node.subnet.toString()}`,
    ...p.peers,
    'peers-end',
    `net-devs ${p.netDevs.join(' ')}`,
    'pods-sync',
  ];
}
