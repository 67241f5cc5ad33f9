import type { Lease } from '../store/lease.js';
import { parseIPv4, type Cidr } from '../util/ipv4.js';
import {
  UDP_OVERHEAD_IPV4,
  UDP_TUN_DEVICE,
  ownIpRefusal,
  type Backend,
  type NodeContext,
  type PeerPlan,
  type Plan,
} from './types.js';

/**
 * Flannel's udp backend, wire-compatible: every inner IPv4 packet is the payload of one UDP datagram
 * to the peer's public IP, port 8285 (Backend.Port). The kernel routes the whole cluster network into
 * a TUN device; weft's native data path (native/udp, supervised by src/udp) picks the peer by the
 * destination's subnet. So the plan is one route for the network plus, per peer, subnet → public IP.
 *
 * Flannel's udp nodes publish no BackendType; peers without one are taken to speak the same format.
 * Peers of another backend are reported unreachable by name (their data path is not this one).
 */
export class UdpBackend implements Backend {
  readonly type = 'udp' as const;
  readonly usesVxlan = false;
  readonly overhead = UDP_OVERHEAD_IPV4;
  readonly cloud = 'none' as const;

  leaseAttrs() {
    return { BackendType: 'udp' };
  }

  plan(ctx: NodeContext, _own: Lease, peers: readonly Lease[]): Plan {
    const plan: Plan = {
      routes: [{ dst: ctx.config.network, dev: UDP_TUN_DEVICE, onlink: false }],
      vteps: [],
      peers: [],
    };
    for (const p of peers) plan.peers.push(planUdpPeer(ctx, p));
    return plan;
  }
}

function planUdpPeer(ctx: NodeContext, p: Lease): PeerPlan {
  const base = { subnet: p.subnet, publicIP: p.attrs.PublicIP };
  const type = p.attrs.BackendType;
  const ip = parseIPv4(p.attrs.PublicIP);
  const who = `peer ${p.subnet.toString()}`;
  if (type !== undefined && type !== 'udp')
    return {
      ...base,
      path: 'unreachable',
      reason: `${who} runs backend ${type}, this node udp: run the same backend on every node`,
    };
  if (ip === undefined) return { ...base, path: 'unreachable', reason: `${who} publishes no IPv4 PublicIP` };
  return ownIpRefusal(ctx, p, ip) ?? { ...base, path: 'udp' };
}

/** The udp data path's peer table: every peer the plan reaches over udp, subnet → public IP. */
export function udpPeerTable(plan: Plan): { subnet: Cidr; ip: string }[] {
  return plan.peers.filter((p) => p.path === 'udp').map((p) => ({ subnet: p.subnet, ip: p.publicIP }));
}
