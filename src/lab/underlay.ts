import { WeftError } from '../util/errors.js';
import type { Journal } from './journal.js';
import { destroyNetns, ipIn, sysctlIn } from './netns.js';
import { untilAnswered } from './ping-rounds.js';
import {
  bridgeApiInto,
  buildNeutronUnderlay,
  neutronNodePlan,
  neutronSubnetIndex,
  plugVm,
  NEUTRON_ETCD_IP,
  NEUTRON_EXTERNAL_IP,
  type NeutronLab,
} from './neutron-underlay.js';
import type { LabSpec } from './spec.js';
import { nsName, type LabState } from './state.js';
import {
  EXTERNAL_IP,
  nodeJoinBatches,
  nodePlan,
  underlayPlan,
  type IpBatch,
  type NodePlan,
} from './topology.js';

/** Builds the underlay a spec asks for (flat and routed from topology.ts' plans; neutron from the fixture). */

export type Progress = (msg: string) => void;

export interface Topology {
  sw: string;
  gw: string;
  ext: string;
  extIp: string;
  etcd: { netns: string; ip: string };
  nodes: NodePlan[];
  neutron?: NeutronLab;
}

export async function buildTopology(
  spec: LabSpec,
  dir: string,
  j: Journal,
  progress: Progress,
): Promise<Topology> {
  return spec.underlay === 'neutron' ? buildNeutronTopology(spec, dir, j, progress) : buildUnderlay(spec, j);
}

const runBatch = (b: IpBatch) => ipIn(b.netns, b.lines, b.what);

async function buildUnderlay(spec: LabSpec, j: Journal): Promise<Topology> {
  const plan = underlayPlan(spec);
  for (const ns of plan.namespaces) await j.record({ kind: 'netns', name: ns });
  await runBatch(plan.outside);
  await Promise.all(plan.inside.map(runBatch));
  await Promise.all(plan.sysctls.map((s) => sysctlIn(s.netns, s.settings)));
  return { sw: plan.sw, gw: plan.gw, ext: plan.ext, extIp: EXTERNAL_IP, etcd: plan.etcd, nodes: plan.nodes };
}

/** The neutron underlay: Neutron network, router and VMs (see neutron-underlay.ts). */
async function buildNeutronTopology(
  spec: LabSpec,
  dir: string,
  j: Journal,
  progress: Progress,
): Promise<Topology> {
  const lab = await buildNeutronUnderlay(spec, dir, j, progress);
  const etcdNs = nsName(spec.name, 'etcd');
  await plugVm(lab, j, {
    name: 'etcd',
    netns: etcdNs,
    ip: NEUTRON_ETCD_IP,
    subnetIndex: 0,
    hypervisor: 'nhost1',
  });
  const nodes: NodePlan[] = [];
  for (let i = 0; i < spec.nodes; i++) nodes.push(await plugNeutronNode(spec, lab, dir, j, i));
  progress(`${spec.nodes} node VMs and an etcd VM plugged into Neutron ports`);
  await waitNodesReachEtcd(nodes, progress);
  return {
    sw: 'fabric',
    gw: `qrouter-${lab.routerId}`,
    ext: 'extnet',
    extIp: NEUTRON_EXTERNAL_IP,
    etcd: { netns: etcdNs, ip: NEUTRON_ETCD_IP },
    nodes,
    neutron: lab,
  };
}

/**
 * Neutron wires a new router, port and chain some time after its API said yes (the L3 agent the
 * router's interfaces, the linuxbridge agent each port's chains); seen in CI: a node behind the
 * router could not reach etcd for the agent's whole 60 s. The underlay is ready when every node VM
 * answers from etcd's address, so the agents start on a network that carries packets.
 */
async function waitNodesReachEtcd(nodes: NodePlan[], progress: Progress, timeoutMs = 180_000): Promise<void> {
  const t0 = performance.now();
  const etcd = { ip: NEUTRON_ETCD_IP };
  const left = (
    await untilAnswered(
      nodes.map((n) => [n, etcd] as const),
      1,
      timeoutMs,
    )
  ).map(([n]) => n);
  if (left.length)
    throw new WeftError(
      `Neutron does not carry packets yet: ${left.map((n) => n.name).join(', ')} cannot reach etcd's VM ${NEUTRON_ETCD_IP} after ${timeoutMs / 1000} s`,
      { hint: "see the Neutron agents' logs in the lab directory (neutron/log)" },
    );
  const secs = Math.round(performance.now() - t0) / 1000;
  if (secs > 1) progress(`Neutron carries packets: every node VM reaches etcd's VM (after ${secs} s)`);
}

async function plugNeutronNode(
  spec: LabSpec,
  lab: NeutronLab,
  dir: string,
  j: Journal,
  i: number,
): Promise<NodePlan> {
  const p = neutronNodePlan(spec.name, i);
  await plugVm(lab, j, {
    name: p.name,
    netns: p.netns,
    ip: p.publicIP,
    subnetIndex: neutronSubnetIndex(p.publicIP),
    hypervisor: p.hypervisor,
  });
  await bridgeApiInto(lab, dir, j, p.netns);
  return { name: p.name, netns: p.netns, publicIP: p.publicIP, underlaySubnet: p.underlaySubnet };
}

/** Node i joins a running lab's underlay (a new namespace, cabled and addressed). */
export async function joinUnderlay(s: LabState, dir: string, j: Journal, i: number): Promise<NodePlan> {
  if (s.neutron) return plugNeutronNode(s.spec, s.neutron, dir, j, i);
  const plan = nodePlan(s.spec, i);
  await j.record({ kind: 'netns', name: plan.netns });
  for (const b of nodeJoinBatches(s.spec, plan, s.switchNetns)) await runBatch(b);
  return plan;
}

/** Whether a node can leave this lab's underlay (checked before anything of the node is removed). */
export function assertNodeCanLeave(s: LabState, node: string): void {
  if (s.neutron)
    throw new WeftError(
      `removing a node from a neutron lab is not supported (${node} keeps its Neutron port)`,
      {
        hint: `remove the whole lab: weft lab down --name ${s.name}`,
      },
    );
}

/** A node leaves a flat or routed underlay: its namespace goes, and with it its cable and switch port. */
export async function leaveUnderlay(s: LabState, node: NodePlan): Promise<void> {
  assertNodeCanLeave(s, node.name);
  await destroyNetns(node.netns);
}
