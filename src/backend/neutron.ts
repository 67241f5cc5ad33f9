import type { Lease } from '../store/lease.js';
import { formatIPv4, parseIPv4 } from '../util/ipv4.js';
import { cloudFlagsOf, type Backend, type CloudFlags, type NodeContext, type Plan } from './types.js';

/**
 * neutron: no encapsulation. The cloud carries pod traffic: this node's port accepts its pod subnet
 * (allowed-address-pairs) and the router routes pod subnet → node. Per peer: a direct route when the
 * peer is on this node's subnet, a route via the subnet's router otherwise. The pod MTU is the node
 * interface's MTU (1450 on a Neutron VXLAN tenant network, instead of 1400 with a second VXLAN).
 */
export class NeutronBackend implements Backend {
  readonly type = 'neutron' as const;
  readonly usesVxlan = false;
  readonly overhead = 0;
  readonly cloud = 'required' as const;

  leaseAttrs(_vtepMac: string | undefined, cloud: CloudFlags | undefined) {
    return { BackendType: 'neutron', BackendData: { Cloud: cloud ?? { Pairs: false, Route: false } } };
  }

  plan(ctx: NodeContext, _own: Lease, peers: readonly Lease[]): Plan {
    const plan: Plan = { routes: [], vteps: [], peers: [] };
    for (const p of peers) {
      const why = planCloudPeer(ctx, p, plan);
      if (why !== undefined)
        plan.peers.push({
          subnet: p.subnet,
          publicIP: p.attrs.PublicIP,
          path: 'unreachable',
          reason: why.reason,
          ...(why.waiting && { waiting: true }),
        });
    }
    return plan;
  }
}

/** Why a peer cannot be routed through the cloud; `waiting`: only until a step under way is done. */
export interface CloudRefusal {
  reason: string;
  waiting: boolean;
}

/**
 * Adds a peer's cloud-routed path to the plan; returns why it cannot be routed natively, or undefined
 * when it was planned. Both ends must be ready: anti-spoofing drops pod sources at either port, and a
 * cross-subnet reply needs the router to know this node's pod subnet too. An end that is not ready
 * and names no problem is still being set up (`waiting`); one that names a problem was refused.
 */
export function planCloudPeer(ctx: NodeContext, p: Lease, plan: Plan): CloudRefusal | undefined {
  const cloud = ctx.cloud;
  const ip = parseIPv4(p.attrs.PublicIP);
  const who = `peer ${p.subnet.toString()} (${p.attrs.PublicIP})`;
  const refused = (reason: string): CloudRefusal => ({ reason, waiting: false });
  const ownSide = (what: string): CloudRefusal =>
    cloud!.problems.length > 0
      ? refused(`${what}: ${cloud!.problems.join('; ')}`)
      : { reason: `${what}: not set up yet`, waiting: true };
  if (!cloud || ip === undefined) return refused(`${who}: no cloud provider is configured on this node`);
  const peer = cloudFlagsOf(p.attrs);
  const own = cloud.own;
  const kind = cloud.classify(p.attrs.PublicIP);
  if (kind === 'none') return refused(`${who} is neither on this node's subnet nor behind its cloud router`);
  if (!own.Pairs) return ownSide("this node's port does not accept pod traffic");
  // A peer that has not published its readiness yet may be starting, or refused by the cloud: its
  // own log says which; here it is a wait (readiness gives up waiting after a while).
  if (!peer.Pairs)
    return {
      reason: `${who} has not made its port accept pod traffic (allowed-address-pairs); see that node's log`,
      waiting: true,
    };
  if (kind === 'same-subnet') {
    plan.routes.push({ dst: p.subnet, via: ip, dev: ctx.iface.name, onlink: false });
    plan.peers.push({ subnet: p.subnet, publicIP: p.attrs.PublicIP, path: 'direct' });
    return undefined;
  }
  if (!own.Route) return ownSide("the cloud router has no route to this node's pods");
  if (!peer.Route)
    return {
      reason: `${who} has no route on the cloud router (quota or permissions); see that node's log`,
      waiting: true,
    };
  if (cloud.routerAddress === undefined)
    return refused(`no router address on this node's subnet to reach ${who}`);
  plan.routes.push({ dst: p.subnet, via: cloud.routerAddress, dev: ctx.iface.name, onlink: false });
  plan.peers.push({
    subnet: p.subnet,
    publicIP: p.attrs.PublicIP,
    path: 'cloud',
    reason: `via router ${formatIPv4(cloud.routerAddress)}`,
  });
  return undefined;
}
