import { ipJsonIn, type Link, type RouteEntry } from '../kernel/iproute.js';
import type { LabState, NodeState, PodState } from '../lab/lab.js';
import { neutronNodePlan } from '../lab/neutron-underlay.js';
import type { Reference } from './reference.js';
import type { Endpoint, Hop, HopKind, PathResult } from './result.js';

/**
 * Which ends each measured path uses, and which interfaces its packets cross. The ends are fixed for
 * a run (the same two nodes for the native and every cross-node path), so that every ratio compares
 * like with like; the hops are read from the kernel's own route lookups, not assumed.
 */

/** A path to measure: what its result will say about it, and the lab objects at its two ends. */
export interface PathPlan extends Pick<
  PathResult,
  'id' | 'label' | 'kind' | 'backend' | 'fastPath' | 'from' | 'to'
> {
  fromNode: NodeState;
  toNode: NodeState;
  fromPod?: PodState;
  toPod?: PodState;
}

/**
 * The two nodes to measure between: the first node, and a peer on the same underlay subnet (so that
 * routed backends such as host-gw can reach it), on another hypervisor when the underlay has them.
 */
export function pickNodes(s: LabState): [NodeState, NodeState] | undefined {
  const [a, ...rest] = s.nodes;
  if (!a || rest.length === 0) return undefined;
  const hv = (n: NodeState) =>
    s.neutron ? neutronNodePlan(s.name, s.nodes.indexOf(n)).hypervisor : undefined;
  const sameSubnet = rest.filter((n) => n.underlaySubnet === a.underlaySubnet);
  const b =
    sameSubnet.find((n) => hv(n) !== hv(a)) ?? sameSubnet[0] ?? rest.find((n) => hv(n) !== hv(a)) ?? rest[0]!;
  return [a, b];
}

const nodeEnd = (n: NodeState): Endpoint => ({ name: n.name, netns: n.netns, ip: n.publicIP });
const podEnd = (p: PodState): Endpoint => ({ name: p.name, netns: p.netns, ip: p.ip });

export function nativePath(a: NodeState, b: NodeState): PathPlan {
  return {
    id: 'native',
    label: `node → node (underlay, ${a.name} → ${b.name})`,
    kind: 'native',
    backend: null,
    from: nodeEnd(a),
    to: nodeEnd(b),
    fromNode: a,
    toNode: b,
  };
}

/** A pod-to-pod path between pods p (on node a) and q (on node b). */
function podPath(
  head: Pick<PathPlan, 'id' | 'label' | 'kind' | 'backend'>,
  [a, b]: [NodeState, NodeState],
  [p, q]: [PodState, PodState],
): PathPlan {
  return { ...head, from: podEnd(p), to: podEnd(q), fromNode: a, toNode: b, fromPod: p, toPod: q };
}

export function sameNodePath(node: NodeState, p: PodState, q: PodState, backend: string): PathPlan {
  const label = `pod → pod, same node (veth + bridge, ${p.name} → ${q.name})`;
  return podPath({ id: 'same-node', label, kind: 'same-node', backend }, [node, node], [p, q]);
}

/** `backend` names the path's id (cross-node/<backend>); `shown` is how tables and results say it. */
export function crossNodePath(
  a: NodeState,
  b: NodeState,
  p: PodState,
  q: PodState,
  backend: string,
  shown = backend,
): PathPlan {
  const label = `pod → pod across nodes, ${shown} (${p.name} → ${q.name})`;
  return podPath({ id: `cross-node/${backend}`, label, kind: 'cross-node', backend: shown }, [a, b], [p, q]);
}

/** The same pod-to-pod path measured with the BPF fast path on: `<id>+bpf`. */
export function withFastPath(p: PathPlan): PathPlan {
  return { ...p, id: `${p.id}+bpf`, label: `${p.label}, BPF fast path`, fastPath: 'bpf' };
}

/**
 * The hand-built paths: its underlay, then pod to pod routed and over VXLAN; with `flannel` (the same
 * built again with flanneld's rules), those two as Flannel builds them.
 */
export function referencePaths(ref: Reference, flannel?: Reference): PathPlan[] {
  const pod = (id: string, what: string, r: Reference, pods: [PodState, PodState]): PathPlan => {
    const label = `hand-built pod → pod, ${what}`;
    return podPath({ id: `reference/${id}`, label, kind: 'reference', backend: null }, r.nodes, pods);
  };
  const plain = '(plain ip commands, no agent, no nftables)';
  const asBuilt = "as Flannel builds it (plain ip commands and flanneld's masquerade and forward rules)";
  return [
    {
      ...nativePath(...ref.nodes),
      id: 'reference/native',
      label: 'hand-built node → node (its own underlay, built like the lab underlay)',
      kind: 'reference',
    },
    pod('routed', `routed like host-gw ${plain}`, ref, ref.routed),
    pod('vxlan', `over VXLAN ${plain}`, ref, ref.vxlan),
    ...(flannel
      ? [
          pod('flannel-routed', `routed like host-gw, ${asBuilt}`, flannel, flannel.routed),
          pod('flannel-vxlan', `over VXLAN, ${asBuilt}`, flannel, flannel.vxlan),
        ]
      : []),
  ];
}

// ------------------------------------------------------------------------------------------- hops
async function link(netns: string, dev: string): Promise<Link | undefined> {
  return (await ipJsonIn<Link>(netns, ['-d', 'link', 'show', 'dev', dev]).catch(() => []))[0];
}

async function routeGet(netns: string, args: string[]): Promise<RouteEntry | undefined> {
  return (await ipJsonIn<RouteEntry>(netns, ['route', 'get', ...args]).catch(() => []))[0];
}

/**
 * The interfaces a packet of the path crosses, sender to receiver, each with its MTU: the pod's
 * interface, its host-side veth and the node's bridge, whatever device the node routes the
 * destination to (an overlay device and the underlay interface under it, or the underlay directly),
 * then the same in reverse on the receiving node. The cloud's or switch's own hops are not visible.
 */
export async function discoverHops(path: PathPlan): Promise<Hop[]> {
  const hops: Hop[] = [];
  const add = async (host: string, netns: string, device: string, kind: HopKind) => {
    const l = await link(netns, device);
    if (l) hops.push({ host, netns, device, kind, mtu: l.mtu });
    return l;
  };
  const { fromNode: a, toNode: b, fromPod: p, toPod: q } = path;

  // Sending side: from the pod through its veth and the bridge, or from the node itself.
  let egress: RouteEntry | undefined;
  let bridge: string | undefined;
  if (p) {
    const out = await routeGet(p.netns, [path.to.ip]);
    await add(p.name, p.netns, out?.dev ?? 'eth0', 'pod');
    if (p.hostVeth) {
      bridge = (await add(a.name, a.netns, p.hostVeth, 'veth'))?.master;
      if (bridge) await add(a.name, a.netns, bridge, 'bridge');
    }
    egress = await routeGet(a.netns, [path.to.ip, 'from', p.ip, ...(bridge ? ['iif', bridge] : [])]);
  } else egress = await routeGet(a.netns, [path.to.ip]);

  let overlay: string | undefined;
  if (egress?.dev && egress.dev !== bridge) {
    const l = await link(a.netns, egress.dev);
    // A VXLAN device names its underlay; a TUN device's (udp) datagrams leave by the route to the peer.
    const kind = l?.linkinfo?.info_kind;
    const under =
      kind === 'vxlan'
        ? l?.linkinfo?.info_data?.link
        : kind === 'tun'
          ? (await routeGet(a.netns, [b.publicIP]))?.dev
          : undefined;
    if (typeof under === 'string') {
      overlay = egress.dev;
      await add(a.name, a.netns, egress.dev, 'overlay');
      await add(a.name, a.netns, under, 'underlay');
    } else await add(a.name, a.netns, egress.dev, 'underlay');
  }

  // Receiving side: the node's underlay interface (the one facing the sender), its overlay device.
  if (b !== a) {
    const back = await routeGet(b.netns, [a.publicIP]);
    if (back?.dev) await add(b.name, b.netns, back.dev, 'underlay');
    if (overlay) await add(b.name, b.netns, overlay, 'overlay');
  }
  if (q) {
    const toPod = await routeGet(b.netns, [q.ip]);
    // On the same node the packet is bridged, not routed: the bridge is already on the list.
    if (toPod?.dev && b !== a) await add(b.name, b.netns, toPod.dev, 'bridge');
    if (q.hostVeth) await add(b.name, b.netns, q.hostVeth, 'veth');
    await add(q.name, q.netns, 'eth0', 'pod');
  }
  return hops;
}
