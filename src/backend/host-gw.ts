import type { Lease } from '../store/lease.js';
import { parseIPv4 } from '../util/ipv4.js';
import { isOnLink, ownIpRefusal, type Backend, type NodeContext, type Plan } from './types.js';

/**
 * host-gw: per peer a route to its subnet via its public IP on the underlay interface. That needs the
 * peer on the same L2 segment; a peer behind a router is refused by name (log, status, metric) instead
 * of programming a route the kernel would reject or that could never ARP.
 */
export class HostGwBackend implements Backend {
  readonly type = 'host-gw' as const;
  readonly usesVxlan = false;
  readonly overhead = 0;
  readonly cloud = 'none' as const;

  leaseAttrs() {
    return { BackendType: 'host-gw' };
  }

  plan(ctx: NodeContext, _own: Lease, peers: readonly Lease[]): Plan {
    const plan: Plan = { routes: [], vteps: [], peers: [] };
    for (const p of peers) planDirectPeer(ctx, p, plan);
    return plan;
  }
}

/** Adds one peer's direct route, or marks it unreachable when it is not on-link. */
export function planDirectPeer(ctx: NodeContext, p: Lease, plan: Plan): boolean {
  const ip = parseIPv4(p.attrs.PublicIP);
  if (ip === undefined || !isOnLink(ctx, ip)) {
    const nets = ctx.iface.prefixes.map((c) => c.toString()).join(', ') || 'no IPv4 prefix';
    plan.peers.push({
      subnet: p.subnet,
      publicIP: p.attrs.PublicIP,
      path: 'unreachable',
      reason: `peer ${p.subnet.toString()} at ${p.attrs.PublicIP} is not on-link on ${ctx.iface.name} (${nets}): host-gw needs every node on one L2 segment; use vxlan or auto`,
    });
    return false;
  }
  const own = ownIpRefusal(ctx, p, ip);
  if (own) {
    plan.peers.push(own);
    return false;
  }
  plan.routes.push({ dst: p.subnet, via: ip, dev: ctx.iface.name, onlink: false });
  plan.peers.push({ subnet: p.subnet, publicIP: p.attrs.PublicIP, path: 'direct' });
  return true;
}
