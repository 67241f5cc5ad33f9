import { randomBytes } from 'node:crypto';
import type { NodeState, PodState } from '../lab/lab.js';
import { destroyNetns, ipIn, sysctlIn } from '../kernel/netns.js';
import { nftApply } from '../kernel/nft.js';

/**
 * The hand-built reference (`weft bench --reference`): the same data paths as weft's, made with plain
 * `ip` commands and nothing else — no agent, no nftables, no CNI plugin — on an underlay built like the
 * lab's (node veths into one bridge in a switch namespace). Measured in the same run, it tells whether
 * weft's paths add anything to what the kernel objects themselves cost.
 *
 *   routed  pod veth + bridge on each node, a route to the peer's pod subnet via its node (host-gw)
 *   vxlan   the same over a VXLAN device per node (VNI 1, port 8472, static FDB and neighbour, MTU − 50)
 *
 * `flannel: true` builds the same again with the rules flanneld adds to every node (its nftables
 * mode, reference/flannel.md §5: masquerade for pods leaving the network, so conntrack on every
 * packet, and the forward chain accepting the network): Flannel as built, which weft replaces.
 *
 * Its own namespaces are named wb-<random>-*, so they never collide with a lab, and `destroy` removes
 * them (the bench calls it in a finally and on Ctrl-C).
 */

export interface Reference {
  nodes: [NodeState, NodeState];
  routed: [PodState, PodState];
  vxlan: [PodState, PodState];
  destroy(): Promise<void>;
}

const live = new Set<string>();

/** Removes every reference namespace still present (an interrupted bench). */
export async function destroyReferences(): Promise<void> {
  await Promise.all([...live].map((ns) => destroyNetns(ns)));
  live.clear();
}

/** flanneld's rules for a node whose pods are in `subnets`, in its nftables mode's own words. */
function flannelRules(network: string, subnets: string[]): string {
  return [
    'table ip flannel-ipv4 {',
    '  chain postrtg {',
    '    type nat hook postrouting priority srcnat; policy accept;',
    '    meta mark 0x00004000 return',
    ...subnets.flatMap((sub) => [
      `    ip saddr ${sub} ip daddr ${network} return`,
      `    ip saddr ${network} ip daddr ${sub} return`,
      `    ip saddr != ${sub} ip daddr ${network} return`,
    ]),
    `    ip saddr ${network} ip daddr != 224.0.0.0/4 masquerade fully-random`,
    `    ip saddr != ${network} ip daddr ${network} masquerade fully-random`,
    '  }',
    '  chain forward {',
    '    type filter hook forward priority filter; policy accept;',
    `    ip saddr ${network} accept`,
    `    ip daddr ${network} accept`,
    '  }',
    '}',
    '',
  ].join('\n');
}

export async function buildReference(mtu: number, o: { flannel?: boolean } = {}): Promise<Reference> {
  const id = randomBytes(2).toString('hex');
  const ns = (role: string) => `wb-${id}-${role}`;
  const sw = ns('sw');
  const all = [sw, ...['n1', 'n2', 'r1', 'r2', 'v1', 'v2'].map(ns)];
  all.forEach((n) => live.add(n));
  const destroy = async () => {
    await Promise.all(all.map((n) => destroyNetns(n)));
    all.forEach((n) => live.delete(n));
  };
  const node = (i: 1 | 2): NodeState => ({
    name: `ref-n${i}`,
    netns: ns(`n${i}`),
    publicIP: `198.18.2.1${i}`,
    underlaySubnet: '198.18.2.0/24',
    agentPid: 0,
    dir: '',
  });
  const pod = (kind: 'r' | 'v', i: 1 | 2): PodState => ({
    name: `ref-${o.flannel ? 'flannel-' : ''}${kind === 'r' ? 'routed' : 'vxlan'}-p${i}`,
    node: `ref-n${i}`,
    netns: ns(`${kind}${i}`),
    ip: `10.250.${kind === 'r' ? i : i + 2}.2`,
    containerId: '',
    hostVeth: `${kind}veth`,
  });
  const nodes: [NodeState, NodeState] = [node(1), node(2)];
  const routed: [PodState, PodState] = [pod('r', 1), pod('r', 2)];
  const vxlan: [PodState, PodState] = [pod('v', 1), pod('v', 2)];
  const vmtu = mtu - 50;
  try {
    await ipIn(
      undefined,
      [
        ...all.map((n) => `netns add ${n}`),
        ...nodes.map(
          (n, k) =>
            `link add eth0 netns ${n.netns} mtu ${mtu} type veth peer name p${k + 1} netns ${sw} mtu ${mtu}`,
        ),
        ...[...routed, ...vxlan].map(
          (p, k) =>
            `link add eth0 netns ${p.netns} mtu ${k < 2 ? mtu : vmtu} type veth peer name ${p.hostVeth} netns ${nodes[k % 2]!.netns} mtu ${k < 2 ? mtu : vmtu}`,
        ),
      ],
      'cannot build the hand-built reference',
    );
    await ipIn(
      sw,
      [
        'link add br0 type bridge',
        'link set br0 up',
        'link set p1 master br0',
        'link set p1 up',
        'link set p2 master br0',
        'link set p2 up',
      ],
      'reference switch',
    );
    await sysctlIn(sw, { 'net.bridge.bridge-nf-call-iptables': '0' });
    for (const k of [0, 1] as const) {
      const n = nodes[k];
      const peer = nodes[1 - k]!;
      const [r, v] = [routed[k], vxlan[k]];
      const [rPeer, vPeer] = [routed[1 - k]!, vxlan[1 - k]!];
      const sub = (p: PodState) => p.ip.replace(/\.2$/, '');
      const macOf = (i: number) => `02:00:00:00:00:0${i}`;
      await ipIn(
        n.netns,
        [
          'link set lo up',
          `addr add ${n.publicIP}/24 dev eth0`,
          'link set eth0 up',
          // routed: bridge with the pod gateway, a route to the peer's pod subnet via the peer node
          `link add rbr mtu ${mtu} type bridge`,
          `addr add ${sub(r)}.1/24 dev rbr`,
          'link set rbr up',
          'link set rveth master rbr',
          'link set rveth up',
          `route add ${sub(rPeer)}.0/24 via ${peer.publicIP}`,
          // vxlan: Flannel's layout, made by hand
          `link add vbr mtu ${vmtu} type bridge`,
          `addr add ${sub(v)}.1/24 dev vbr`,
          'link set vbr up',
          'link set vveth master vbr',
          'link set vveth up',
          `link add vx address ${macOf(k + 1)} mtu ${vmtu} type vxlan id 1 local ${n.publicIP} dev eth0 dstport 8472 nolearning`,
          `addr add ${sub(v)}.0/32 dev vx`,
          'link set vx up',
          `neigh add ${sub(vPeer)}.0 lladdr ${macOf(2 - k)} dev vx nud permanent`,
          `route add ${sub(vPeer)}.0/24 via ${sub(vPeer)}.0 dev vx onlink`,
        ],
        `reference node ${n.name}`,
      );
      const fdb = `fdb append ${macOf(2 - k)} dev vx dst ${peer.publicIP} self permanent`;
      await ipIn(n.netns, [fdb], `reference node ${n.name}`, 'bridge');
      await sysctlIn(n.netns, { 'net.ipv4.ip_forward': '1' });
      if (o.flannel)
        await nftApply(flannelRules('10.250.0.0/16', [`${sub(r)}.0/24`, `${sub(v)}.0/24`]), {
          netns: n.netns,
        });
      for (const p of [r, v])
        await ipIn(
          p.netns,
          [
            'link set lo up',
            `addr add ${p.ip}/24 dev eth0`,
            'link set eth0 up',
            `route add default via ${sub(p)}.1`,
          ],
          `reference pod ${p.name}`,
        );
    }
  } catch (e) {
    await destroy();
    throw e;
  }
  return { nodes, routed, vxlan, destroy };
}
