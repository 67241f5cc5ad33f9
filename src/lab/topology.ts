import type { LabSpec } from './spec.js';
import { nsName, type NodeState } from './state.js';

/**
 * The flat and routed underlays as data: which namespaces exist, how they are cabled, and the `ip`
 * commands that build each one. Pure: nothing here touches the kernel (underlay.ts runs the plans).
 *
 *   flat    one L2 segment 198.18.0.0/24 (a bridge in the lab's switch namespace)
 *   routed  198.18.0.0/24 and 198.18.1.0/24 joined by the lab's router; nodes alternate between them
 * Every lab also has a gateway/router namespace (198.18.x.1) and an "external" host 198.19.0.10
 * behind it, which has no route to the pod network (so pods reach it only through masquerade).
 */

export const ETCD_IP = '198.18.0.2';
export const EXTERNAL_IP = '198.19.0.10';

/** Where a node sits on the underlay (its state without the agent). */
export type NodePlan = Omit<NodeState, 'agentPid' | 'dir'>;

/** One `ip -batch` for a namespace (undefined: run from outside, where namespaces are made). */
export interface IpBatch {
  netns: string | undefined;
  lines: string[];
  what: string;
}

export interface UnderlayPlan {
  sw: string;
  gw: string;
  ext: string;
  etcd: { netns: string; ip: string };
  nodes: NodePlan[];
  /** Every namespace, in the order they are made. */
  namespaces: string[];
  /** First from outside (namespaces and cables), then inside each namespace, all at once. */
  outside: IpBatch;
  inside: IpBatch[];
  /** sysctls per namespace, after the devices exist. */
  sysctls: { netns: string; settings: Record<string, string> }[];
}

/** Node i (0-based); on a routed underlay nodes alternate between the two subnets. */
export function nodePlan(spec: Pick<LabSpec, 'name' | 'underlay'>, i: number): NodePlan {
  const k = spec.underlay === 'routed' ? i % 2 : 0;
  const net = `198.18.${k}`;
  return {
    name: `n${i + 1}`,
    netns: nsName(spec.name, `n${i + 1}`),
    publicIP: `${net}.${11 + i}`,
    underlaySubnet: `${net}.0/24`,
  };
}

/** The index of the next node: one past the highest in use (names and addresses are never reused). */
export function nextNodeIndex(nodes: readonly { name: string }[]): number {
  return Math.max(0, ...nodes.map((n) => Number(/^n(\d+)$/.exec(n.name)?.[1] ?? 0)));
}

const hostCmds = (ip: string, plen: number, gwIp: string | undefined, dev = 'eth0') => [
  'link set lo up',
  `addr add ${ip}/${plen} dev ${dev}`,
  `link set ${dev} up`,
  ...(gwIp ? [`route add default via ${gwIp}`] : []),
];

// How a node is cabled: a veth from its eth0 to a port of its segment's bridge in the switch namespace.
const nodeCable = (spec: Pick<LabSpec, 'name' | 'mtu'>, x: NodePlan) =>
  `link add eth0 netns ${x.netns} mtu ${spec.mtu} type veth peer name ${x.name} netns ${nsName(spec.name, 'sw')} mtu ${spec.mtu}`;
const nodeSwitchCmds = (x: NodePlan) => [
  `link set ${x.name} master ${x.underlaySubnet.startsWith('198.18.1.') ? 'br1' : 'br0'}`,
  `link set ${x.name} up`,
];
const nodeHostCmds = (x: NodePlan) =>
  hostCmds(x.publicIP, 24, `${x.publicIP.split('.').slice(0, 3).join('.')}.1`);

/** The whole flat or routed underlay with `spec.nodes` nodes. */
export function underlayPlan(spec: LabSpec): UnderlayPlan {
  const n = (role: string) => nsName(spec.name, role);
  const subnets = spec.underlay === 'routed' ? ['198.18.0', '198.18.1'] : ['198.18.0'];
  const [sw, gw, ext, etcdNs] = [n('sw'), n('gw'), n('ext'), n('etcd')];
  const nodes = Array.from({ length: spec.nodes }, (_, i) => nodePlan(spec, i));
  const namespaces = [sw, gw, ext, etcdNs, ...nodes.map((x) => x.netns)];
  const mtu = spec.mtu;
  // Namespaces and cables from outside (links are created directly inside their namespaces).
  const outside = namespaces.map((ns) => `netns add ${ns}`);
  const cable = (a: string, aIf: string, b: string, bIf: string) =>
    outside.push(`link add ${aIf} netns ${a} mtu ${mtu} type veth peer name ${bIf} netns ${b} mtu ${mtu}`);
  cable(etcdNs, 'eth0', sw, 'etcd');
  subnets.forEach((_, k) => cable(gw, `eth${k}`, sw, `gw${k}`));
  cable(gw, 'ext0', ext, 'eth0');
  outside.push(...nodes.map((x) => nodeCable(spec, x)));

  const swCmds = subnets.flatMap((_, k) => [
    `link add br${k} mtu ${mtu} type bridge`,
    `link set br${k} up`,
    `link set gw${k} master br${k}`,
    `link set gw${k} up`,
  ]);
  swCmds.push('link set etcd master br0', 'link set etcd up', ...nodes.flatMap(nodeSwitchCmds));
  return {
    sw,
    gw,
    ext,
    etcd: { netns: etcdNs, ip: ETCD_IP },
    nodes,
    namespaces,
    outside: { netns: undefined, lines: outside, what: 'cannot create the lab namespaces' },
    inside: [
      { netns: sw, lines: swCmds, what: 'cannot build the lab switch' },
      {
        netns: gw,
        lines: [
          'link set lo up',
          ...subnets.flatMap((s, k) => [`addr add ${s}.1/24 dev eth${k}`, `link set eth${k} up`]),
          'addr add 198.19.0.1/24 dev ext0',
          'link set ext0 up',
        ],
        what: 'cannot build the lab gateway',
      },
      {
        netns: ext,
        lines: [...hostCmds(EXTERNAL_IP, 24, undefined), 'route add 198.18.0.0/16 via 198.19.0.1'],
        what: 'cannot build the external host',
      },
      { netns: etcdNs, lines: hostCmds(ETCD_IP, 24, '198.18.0.1'), what: 'cannot build the etcd host' },
      ...nodes.map((x) => ({ netns: x.netns, lines: nodeHostCmds(x), what: `cannot build node ${x.name}` })),
    ],
    sysctls: [
      { netns: gw, settings: { 'net.ipv4.ip_forward': '1' } },
      // The switch is a plain L2 switch: no netfilter on its bridges.
      {
        netns: sw,
        settings: {
          'net.bridge.bridge-nf-call-iptables': '0',
          'net.bridge.bridge-nf-call-ip6tables': '0',
          'net.bridge.bridge-nf-call-arptables': '0',
        },
      },
    ],
  };
}

/** One more node on a running flat or routed underlay: its namespace and cable, its switch port, its host. */
export function nodeJoinBatches(
  spec: Pick<LabSpec, 'name' | 'mtu'>,
  x: NodePlan,
  switchNetns: string,
): IpBatch[] {
  return [
    {
      netns: undefined,
      lines: [`netns add ${x.netns}`, nodeCable(spec, x)],
      what: `cannot create node ${x.name}`,
    },
    { netns: switchNetns, lines: nodeSwitchCmds(x), what: `cannot plug node ${x.name}` },
    { netns: x.netns, lines: nodeHostCmds(x), what: `cannot build node ${x.name}` },
  ];
}
