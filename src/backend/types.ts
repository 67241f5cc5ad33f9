import type { BackendType, NetworkConfig } from '../config/network-config.js';
import type { Lease, LeaseAttrs } from '../store/lease.js';
import { formatIPv4, type Cidr, type IPv4 } from '../util/ipv4.js';

/**
 * A backend is a policy: from this node's facts and the peer leases it derives the desired data path
 * (routes, VXLAN tunnel endpoints) and says for every peer which path it gets and why. It never touches
 * the kernel itself; the data plane owns the kernel objects and applies the plan (one owner per object).
 */

export interface NodeContext {
  /** The public (underlay) interface. */
  iface: { name: string; mtu: number; prefixes: Cidr[] };
  publicIP: IPv4;
  config: NetworkConfig;
  /** Present when a cloud provider routes pod subnets (neutron, auto on a cloud). */
  cloud?: CloudView;
}

/**
 * Published in a lease's BackendData.Cloud: whether the cloud accepts this node's pod sources on its
 * port (Pairs) and routes its pod subnet on the router (Route). Peers route natively only when both
 * ends are ready.
 */
export interface CloudFlags {
  Pairs: boolean;
  Route: boolean;
}

export interface CloudView {
  classify(peerIp: string): 'same-subnet' | 'cloud-router' | 'none';
  /** The router's address on this node's subnet: next hop to cross-subnet peers' pod subnets. */
  routerAddress: IPv4 | undefined;
  own: CloudFlags;
  /** What the cloud refused for this node, in words. */
  problems: string[];
}

export function cloudFlagsOf(attrs: LeaseAttrs): CloudFlags {
  const c = (attrs.BackendData as { Cloud?: Partial<CloudFlags> } | undefined)?.Cloud;
  return { Pairs: c?.Pairs === true, Route: c?.Route === true };
}

export interface RouteSpec {
  dst: Cidr;
  /** Next hop; absent for a device route (udp: the cluster network into the TUN device). */
  via?: IPv4;
  dev: string;
  onlink: boolean;
}

/** One remote VXLAN tunnel endpoint: a permanent neighbour (peer subnet .0 → MAC) and an FDB entry (MAC → public IP). */
export interface VtepSpec {
  neighIP: IPv4;
  mac: string;
  remote: IPv4;
}

/**
 * How a peer is reached: encapsulated by the kernel (vxlan) or by weft's udp data path, routed
 * directly on-link, routed by the cloud, or not at all.
 */
export const PATH_KINDS = ['vxlan', 'udp', 'direct', 'cloud', 'unreachable'] as const;
export type PathKind = (typeof PATH_KINDS)[number];

export interface PeerPlan {
  subnet: Cidr;
  publicIP: string;
  path: PathKind;
  /** Why a peer is unreachable, in words an operator can act on. */
  reason?: string;
  /** Unreachable only for now: a step under way (the cloud setting up either end) will route it. */
  waiting?: boolean;
}

export interface Plan {
  routes: RouteSpec[];
  vteps: VtepSpec[];
  peers: PeerPlan[];
}

export interface Backend {
  readonly type: BackendType;
  /** Whether this backend needs the node's VXLAN device. */
  readonly usesVxlan: boolean;
  /** Encapsulation overhead in bytes for the pod MTU (vxlan 50 over IPv4, routed 0). */
  readonly overhead: number;
  /** BackendType/BackendData published in this node's lease. */
  leaseAttrs(
    vtepMac: string | undefined,
    cloud: CloudFlags | undefined,
  ): Pick<LeaseAttrs, 'BackendType' | 'BackendData'>;
  /** Whether it needs (neutron) or can use (auto) a cloud provider. */
  readonly cloud: 'required' | 'optional' | 'none';
  plan(ctx: NodeContext, own: Lease, peers: readonly Lease[]): Plan;
}

export const VXLAN_OVERHEAD_IPV4 = 50;
/** Flannel's udp encapsulation: an outer IPv4 header and a UDP header. */
export const UDP_OVERHEAD_IPV4 = 28;
/** The udp backend's TUN device (Flannel calls its own flannel0). */
export const UDP_TUN_DEVICE = 'weft.udp';

export function vxlanDeviceName(vni: number): string {
  return `weft.${vni}`;
}

/** The peer's public IP is inside one of the interface's connected prefixes: reachable without a router. */
export function isOnLink(ctx: NodeContext, ip: IPv4): boolean {
  return ctx.iface.prefixes.some((p) => p.contains(ip));
}

/**
 * A peer that publishes this node's own public IP (a copied lease, a cloned machine) gets no path:
 * the refusal to plan for it, or undefined when the address is another node's.
 */
export function ownIpRefusal(ctx: NodeContext, p: Lease, ip: IPv4): PeerPlan | undefined {
  if (ip !== ctx.publicIP) return undefined;
  return {
    subnet: p.subnet,
    publicIP: p.attrs.PublicIP,
    path: 'unreachable',
    reason: `peer ${p.subnet.toString()} claims this node's public IP ${formatIPv4(ip)}`,
  };
}

/** The pod MTU, and the tunnel device's: the underlay's (or the config's MTU) less the encapsulation. */
export function podMtu(
  ctx: { config: Pick<NetworkConfig, 'backend'>; iface: { mtu: number } },
  backend: Pick<Backend, 'overhead'>,
): number {
  return (ctx.config.backend.mtu ?? ctx.iface.mtu) - backend.overhead;
}
