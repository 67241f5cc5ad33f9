/**
 * A cluster on real Neutron whose nodes are programmed exactly as stock flanneld with the host-gw
 * backend programs itself — no weft agent anywhere: in each node VM a bridge cni0 holding the node's
 * pod subnet and its pods (what the CNI bridge plugin makes from flanneld's subnet.env), and for every
 * peer lease `ip route replace <peer subnet> via <peer PublicIP> dev eth0` (flanneld's host-gw route;
 * the kernel refuses it for a peer on another subnet, as it refuses flanneld, which logs and goes on);
 * and a Flannel-format lease in etcd for each node.
 *
 * The Neutron side comes from the lab's own neutron underlay (fixture, network with two subnets behind
 * a router, port security on); everything is journaled under the lab's directory, so labDown removes it.
 */
import { mkdir } from 'node:fs/promises';
import { Journal, labDir } from '../../src/lab/journal.js';
import {
  buildNeutronUnderlay,
  neutronNodePlan,
  neutronSubnetIndex,
  plugVm,
  type NeutronLab,
} from '../../src/lab/neutron-underlay.js';
import { labDown } from '../../src/lab/lab.js';
import { validateSpec } from '../../src/lab/spec.js';
import { SubnetRegistry } from '../../src/store/registry.js';
import { Cidr } from '../../src/util/ipv4.js';
import { run } from '../../src/util/exec.js';
import { inNs } from '../helpers/lab.js';

export interface FlannelPod {
  name: string;
  netns: string;
  ip: string;
}
export interface FlannelNode {
  name: string;
  netns: string;
  ip: string;
  hypervisor: string;
  portId: string;
  podCIDR: string;
  pods: FlannelPod[];
}

export interface FlannelCluster {
  name: string;
  dir: string;
  neutron: NeutronLab;
  nodes: FlannelNode[];
  /** Plugs one more node VM and programs it like flanneld (bridge, pod); its lease is not written yet. */
  addNode(): Promise<FlannelNode>;
  /** What flanneld does on every node when the set of leases changes: one route per on-link peer. */
  programRoutes(): Promise<{ node: string; peer: string; error: string }[]>;
  /** Writes the node's lease as flanneld does (etcd lease with a TTL, Flannel's JSON). */
  putLease(n: FlannelNode): Promise<void>;
  removeLease(n: FlannelNode): Promise<void>;
  down(): Promise<void>;
}

const sh = async (ns: string, argv: string[]) => {
  const r = await inNs(ns, argv);
  if (r.code !== 0) throw new Error(`${ns}: ${argv.join(' ')}: ${r.stderr.trim()}`);
};

const ipBatch = async (ns: string, lines: string[]) => {
  const r = await inNs(ns, ['ip', '-batch', '-'], { input: lines.join('\n') + '\n' });
  if (r.code !== 0) throw new Error(`${ns}: ip -batch: ${r.stderr.trim()}`);
};

export async function flannelHostGwOnNeutron(
  name: string,
  nodes: number,
  registry: SubnetRegistry,
  progress: (m: string) => void = () => undefined,
): Promise<FlannelCluster> {
  const dir = labDir(name);
  await mkdir(dir, { recursive: true });
  const j = new Journal(dir);
  await j.record({ kind: 'dir', path: dir });
  const c: FlannelCluster = {
    name,
    dir,
    neutron: undefined as unknown as NeutronLab,
    nodes: [],
    addNode,
    programRoutes,
    putLease,
    removeLease,
    down: () => labDown(name),
  };
  try {
    const spec = validateSpec({ name, underlay: 'neutron', backend: 'host-gw', network: '10.244.0.0/16' });
    c.neutron = await buildNeutronUnderlay(spec, dir, j, progress);
    for (let i = 0; i < nodes; i++) await addNode();
  } catch (e) {
    await c.down();
    throw e;
  }
  return c;

  async function addNode(): Promise<FlannelNode> {
    const i = c.nodes.length;
    const p = neutronNodePlan(name, i);
    const portId = await plugVm(c.neutron, j, {
      name: p.name,
      netns: p.netns,
      ip: p.publicIP,
      subnetIndex: neutronSubnetIndex(p.publicIP),
      hypervisor: p.hypervisor,
    });
    const podCIDR = `10.244.${i + 1}.0/24`;
    const gw = `10.244.${i + 1}.1`;
    const mtu = (await inNs(p.netns, ['cat', '/sys/class/net/eth0/mtu'])).stdout.trim();
    // flanneld leaves forwarding to the host (kubelet/docker turn it on); the CNI bridge plugin makes cni0.
    await sh(p.netns, ['sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    const pod: FlannelPod = { name: `${p.name}p1`, netns: `${p.netns}p1`, ip: `10.244.${i + 1}.2` };
    await j.record({ kind: 'netns', name: pod.netns });
    const made = await run('ip', ['netns', 'add', pod.netns], { allowFailure: true });
    if (made.code !== 0) throw new Error(`ip netns add ${pod.netns}: ${made.stderr.trim()}`);
    await ipBatch(p.netns, [
      `link add cni0 mtu ${mtu} type bridge`,
      `addr add ${gw}/24 dev cni0`,
      'link set cni0 up',
      `link add veth${pod.name} mtu ${mtu} type veth peer name eth0 netns ${pod.netns}`,
      `link set veth${pod.name} master cni0 up`,
    ]);
    await ipBatch(pod.netns, [
      'link set lo up',
      `link set eth0 mtu ${mtu} up`,
      `addr add ${pod.ip}/24 dev eth0`,
      `route add default via ${gw}`,
    ]);
    const node: FlannelNode = {
      name: p.name,
      netns: p.netns,
      ip: p.publicIP,
      hypervisor: p.hypervisor,
      portId,
      podCIDR,
      pods: [pod],
    };
    c.nodes.push(node);
    return node;
  }

  async function programRoutes() {
    const refused: { node: string; peer: string; error: string }[] = [];
    for (const n of c.nodes)
      for (const peer of c.nodes.filter((x) => x !== n)) {
        const r = await inNs(n.netns, [
          'ip',
          'route',
          'replace',
          peer.podCIDR,
          'via',
          peer.ip,
          'dev',
          'eth0',
        ]);
        if (r.code !== 0) refused.push({ node: n.name, peer: peer.name, error: r.stderr.trim() });
      }
    return refused;
  }

  async function putLease(n: FlannelNode) {
    const lease = await registry.grant(86400);
    const attrs = { PublicIP: n.ip, PublicIPv6: null, BackendType: 'host-gw', BackendData: null };
    const ok = await registry.casPut(Cidr.parse(n.podCIDR)!, attrs, lease, undefined);
    if (!ok) throw new Error(`lease ${n.podCIDR} exists`);
  }

  async function removeLease(n: FlannelNode) {
    await registry.client.delete().key(`${registry.prefix}/subnets/${n.podCIDR.replace('/', '-')}`);
  }
}
