import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatNetworkConfig, type BackendType } from '../config/network-config.js';
import { readSubnetEnv } from '../config/subnet-env.js';
import { invokeCni } from '../cni/invoke.js';
import { agentGet } from '../cli/status-command.js';
import { WeftError, describeError } from '../util/errors.js';
import { startEtcd } from './etcd-server.js';
import { Journal, LAB_ROOT, labDir } from './journal.js';
import { cmdline, destroyNetns, execIn, ipIn, killAll, listNetns, sysctlIn } from './netns.js';
import type { LabSpec } from './spec.js';
import {
  bridgeApiInto,
  buildNeutronUnderlay,
  fixture,
  neutronNodePlan,
  neutronSubnetIndex,
  plugVm,
  NEUTRON_CLOUD,
  NEUTRON_ETCD_IP,
  NEUTRON_EXTERNAL_IP,
  type NeutronLab,
} from './neutron-underlay.js';

/**
 * A cluster on one machine (what Magnum did for the talk): nodes and pods are network namespaces on an
 * underlay, a real etcd holds the network config and leases, the real agent runs in every node, and
 * pods are attached by the real CNI plugin over the CNI protocol, exactly as a runtime would.
 *
 * Underlays (inside namespaces only; the machine's own namespace is never touched):
 *   flat    one L2 segment 198.18.0.0/24 (a bridge in the lab's switch namespace)
 *   routed  198.18.0.0/24 and 198.18.1.0/24 joined by the lab's router; nodes alternate between them
 * Every lab also has a gateway/router namespace (198.18.x.1) and an "external" host 198.19.0.10
 * behind it, which has no route to the pod network (so pods reach it only through masquerade).
 */

export const ETCD_IP = '198.18.0.2';
export const EXTERNAL_IP = '198.19.0.10';
export const AGENT_METRICS_PORT = 9909;
const WEFT_JS = fileURLToPath(new URL('../cli/weft.js', import.meta.url));
/** The native shim (served by each node's agent) when it was built, else the Node plugin itself. */
const CNI_SHIM = fileURLToPath(new URL('../cni/weft-cni', import.meta.url));
export const CNI_PLUGIN = existsSync(CNI_SHIM)
  ? CNI_SHIM
  : fileURLToPath(new URL('../cni/main.js', import.meta.url));

export interface NodeState {
  name: string;
  netns: string;
  publicIP: string;
  underlaySubnet: string;
  agentPid: number;
  dir: string;
}

export interface PodState {
  name: string;
  node: string;
  netns: string;
  ip: string;
  containerId: string;
  hostVeth?: string;
}

export interface LabState {
  name: string;
  underlay: string;
  backend: BackendType;
  /** Extra keys of the network config's Backend object (a bench variant such as udp with Batch 1). */
  backendOptions?: Record<string, unknown>;
  spec: LabSpec;
  createdAt: string;
  etcd: { netns: string | null; endpoints: string[]; pid: number };
  gateway: { netns: string };
  external: { netns: string; ip: string };
  switchNetns: string;
  /** The Neutron resources of a neutron underlay. */
  neutron?: NeutronLab;
  nodes: NodeState[];
  pods: PodState[];
  /** Seconds `lab up` took, by phase. */
  timings: Record<string, number>;
}

export const nsName = (lab: string, role: string): string => `wl-${lab}-${role}`;
export const labPrefix = (lab: string): string => `wl-${lab}-`;

export function cniConfig(node: NodeState): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: 'weft',
    type: 'weft-cni',
    subnetFile: join(node.dir, 'subnet.env'),
    dataDir: join(node.dir, 'cni'),
    bridge: 'weft0',
    isDefaultGateway: true,
  };
}

export async function readState(name: string): Promise<LabState> {
  try {
    return JSON.parse(await readFile(join(labDir(name), 'state.json'), 'utf8')) as LabState;
  } catch {
    throw new WeftError(`no lab named "${name}" is up`, {
      hint: 'see `weft lab status` for the labs on this machine, or `weft lab up --name NAME`',
    });
  }
}

export async function writeState(s: LabState): Promise<void> {
  await writeFile(join(labDir(s.name), 'state.json'), JSON.stringify(s, null, 2));
}

export async function listLabs(): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  try {
    return (await readdir(LAB_ROOT)).sort();
  } catch {
    return [];
  }
}

type Progress = (msg: string) => void;

// ------------------------------------------------------------------------------------------- up
export async function labUp(spec: LabSpec, progress: Progress = () => undefined): Promise<LabState> {
  const dir = labDir(spec.name);
  if (
    (await listLabs()).includes(spec.name) ||
    (await listNetns()).some((n) => n.startsWith(labPrefix(spec.name)))
  ) {
    throw new WeftError(`a lab named "${spec.name}" already exists`, {
      hint: `weft lab down --name ${spec.name}`,
    });
  }
  const t0 = performance.now();
  const timings: Record<string, number> = {};
  const mark = (phase: string, since: number) =>
    (timings[phase] = Math.round(performance.now() - since) / 1000);
  await mkdir(dir, { recursive: true });
  const j = new Journal(dir);
  await j.record({ kind: 'dir', path: dir });
  try {
    let t = performance.now();
    const topo =
      spec.underlay === 'neutron'
        ? await buildNeutronTopology(spec, dir, j, progress)
        : await buildUnderlay(spec, j);
    mark('underlay', t);
    progress(`underlay ${spec.underlay}: ${spec.nodes} nodes, gateway, external host`);

    t = performance.now();
    const etcdNs = topo.etcd.netns;
    const etcd = await startEtcd({ dir: join(dir, 'etcd'), host: topo.etcd.ip, netns: etcdNs });
    await j.record({ kind: 'process', pid: etcd.pid, what: 'etcd' });
    await etcdctl({ netns: etcdNs, endpoints: [etcd.endpoint] }, [
      'put',
      '/coreos.com/network/config',
      formatNetworkConfig({
        network: spec.network,
        subnetLen: spec.subnetLen,
        backend: { type: spec.backend },
      }),
    ]);
    mark('etcd', t);
    progress(
      `etcd ${etcd.endpoint} (netns ${etcdNs}), network config ${spec.network} backend ${spec.backend}`,
    );

    const state: LabState = {
      name: spec.name,
      underlay: spec.underlay,
      backend: spec.backend,
      spec,
      createdAt: new Date().toISOString(),
      etcd: { netns: etcdNs, endpoints: [etcd.endpoint], pid: etcd.pid },
      gateway: { netns: topo.gw },
      external: { netns: topo.ext, ip: topo.extIp },
      switchNetns: topo.sw,
      ...(topo.neutron && { neutron: topo.neutron }),
      nodes: topo.nodes.map((n) => ({ ...n, agentPid: 0, dir: join(dir, 'nodes', n.name) })),
      pods: [],
      timings,
    };
    await writeState(state);

    t = performance.now();
    for (const n of state.nodes) n.agentPid = await startAgent(state, n, j);
    await writeState(state);
    await Promise.all(state.nodes.map((n) => waitReady(n)));
    mark('agents', t);
    progress(`agents ready on ${state.nodes.length} nodes`);

    t = performance.now();
    await attachPods(state, j);
    mark('pods', t);
    timings.total = Math.round(performance.now() - t0) / 1000;
    await writeState(state);
    progress(`${state.pods.length} pods attached through weft-cni; lab up in ${timings.total} s`);
    return state;
  } catch (err) {
    throw new WeftError(`lab up failed: ${describeError(err)}`, {
      hint: `logs in ${dir}; remove what was made with: weft lab down --name ${spec.name}`,
    });
  }
}

interface Topology {
  sw: string;
  gw: string;
  ext: string;
  extIp: string;
  etcd: { netns: string; ip: string };
  nodes: Omit<NodeState, 'agentPid' | 'dir'>[];
  neutron?: NeutronLab;
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

type NodePlan = Omit<NodeState, 'agentPid' | 'dir'>;

/** Node i (0-based); on a routed underlay nodes alternate between the two subnets. */
function nodePlan(spec: LabSpec, i: number): NodePlan {
  const k = spec.underlay === 'routed' ? i % 2 : 0;
  const net = `198.18.${k}`;
  return {
    name: `n${i + 1}`,
    netns: nsName(spec.name, `n${i + 1}`),
    publicIP: `${net}.${11 + i}`,
    underlaySubnet: `${net}.0/24`,
  };
}

const hostCmds = (ip: string, plen: number, gwIp: string | undefined, dev = 'eth0') => [
  'link set lo up',
  `addr add ${ip}/${plen} dev ${dev}`,
  `link set ${dev} up`,
  ...(gwIp ? [`route add default via ${gwIp}`] : []),
];
// How a node is cabled: a veth from its eth0 to a port of its segment's bridge in the switch namespace.
const nodeCable = (spec: LabSpec, x: NodePlan) =>
  `link add eth0 netns ${x.netns} mtu ${spec.mtu} type veth peer name ${x.name} netns ${nsName(spec.name, 'sw')} mtu ${spec.mtu}`;
const nodeSwitchCmds = (x: NodePlan) => [
  `link set ${x.name} master ${x.underlaySubnet.startsWith('198.18.1.') ? 'br1' : 'br0'}`,
  `link set ${x.name} up`,
];
const nodeHostCmds = (x: NodePlan) =>
  hostCmds(x.publicIP, 24, `${x.publicIP.split('.').slice(0, 3).join('.')}.1`);

async function buildUnderlay(spec: LabSpec, j: Journal): Promise<Topology> {
  const n = (role: string) => nsName(spec.name, role);
  const subnets = spec.underlay === 'routed' ? ['198.18.0', '198.18.1'] : ['198.18.0'];
  const sw = n('sw');
  const gw = n('gw');
  const ext = n('ext');
  const etcdNs = n('etcd');
  const nodes = Array.from({ length: spec.nodes }, (_, i) => nodePlan(spec, i));
  const all = [sw, gw, ext, etcdNs, ...nodes.map((x) => x.netns)];
  for (const ns of all) await j.record({ kind: 'netns', name: ns });
  // Namespaces and cables from outside (links are created directly inside their namespaces).
  const mtu = spec.mtu;
  const root = all.map((ns) => `netns add ${ns}`);
  const cable = (a: string, aIf: string, b: string, bIf: string) =>
    root.push(`link add ${aIf} netns ${a} mtu ${mtu} type veth peer name ${bIf} netns ${b} mtu ${mtu}`);
  cable(etcdNs, 'eth0', sw, 'etcd');
  subnets.forEach((_, k) => cable(gw, `eth${k}`, sw, `gw${k}`));
  cable(gw, 'ext0', ext, 'eth0');
  root.push(...nodes.map((x) => nodeCable(spec, x)));
  await ipIn(undefined, root, 'cannot create the lab namespaces');

  const swCmds = subnets.flatMap((_, k) => [
    `link add br${k} mtu ${mtu} type bridge`,
    `link set br${k} up`,
    `link set gw${k} master br${k}`,
    `link set gw${k} up`,
  ]);
  swCmds.push('link set etcd master br0', 'link set etcd up', ...nodes.flatMap(nodeSwitchCmds));
  await Promise.all([
    ipIn(sw, swCmds, 'cannot build the lab switch'),
    ipIn(
      gw,
      [
        'link set lo up',
        ...subnets.flatMap((s, k) => [`addr add ${s}.1/24 dev eth${k}`, `link set eth${k} up`]),
        'addr add 198.19.0.1/24 dev ext0',
        'link set ext0 up',
      ],
      'cannot build the lab gateway',
    ),
    ipIn(
      ext,
      [...hostCmds(EXTERNAL_IP, 24, undefined), 'route add 198.18.0.0/16 via 198.19.0.1'],
      'cannot build the external host',
    ),
    ipIn(etcdNs, hostCmds(ETCD_IP, 24, '198.18.0.1'), 'cannot build the etcd host'),
    ...nodes.map((x) => ipIn(x.netns, nodeHostCmds(x), `cannot build node ${x.name}`)),
  ]);
  await Promise.all([
    sysctlIn(gw, { 'net.ipv4.ip_forward': '1' }),
    // The switch is a plain L2 switch: no netfilter on its bridges.
    sysctlIn(sw, {
      'net.bridge.bridge-nf-call-iptables': '0',
      'net.bridge.bridge-nf-call-ip6tables': '0',
      'net.bridge.bridge-nf-call-arptables': '0',
    }),
  ]);
  return { sw, gw, ext, extIp: EXTERNAL_IP, etcd: { netns: etcdNs, ip: ETCD_IP }, nodes };
}

async function etcdctl(etcd: { netns: string | null; endpoints: string[] }, args: string[]): Promise<string> {
  const r = await execIn(etcd.netns!, [
    'env',
    'ETCDCTL_API=3',
    'etcdctl',
    `--endpoints=${etcd.endpoints.join(',')}`,
    ...args,
  ]);
  return r.stdout;
}

export function agentArgs(state: LabState, node: NodeState): string[] {
  return [
    WEFT_JS,
    'agent',
    `--etcd-endpoints=${state.etcd.endpoints.join(',')}`,
    '--iface=eth0',
    `--subnet-file=${join(node.dir, 'subnet.env')}`,
    `--status-socket=${join(node.dir, 'agent.sock')}`,
    `--healthz-addr=0.0.0.0:${AGENT_METRICS_PORT}`,
    `--subnet-lease-ttl=${state.spec.leaseTtl}`,
    `--resync=${state.spec.resync}`,
    ...(state.spec.ipMasq ? ['--ip-masq'] : []),
    ...(state.neutron
      ? [
          `--cloud=${NEUTRON_CLOUD}`,
          `--cloud-config=${state.neutron.cloudsYaml}`,
          `--cluster-name=wl-${state.name}`,
        ]
      : []),
  ];
}

/** Starts the agent detached inside the node's namespace; its JSON log goes to <node dir>/agent.log. */
export async function startAgent(state: LabState, node: NodeState, j?: Journal): Promise<number> {
  await mkdir(node.dir, { recursive: true });
  const log = await open(join(node.dir, 'agent.log'), 'a');
  const child = spawn('ip', ['netns', 'exec', node.netns, process.execPath, ...agentArgs(state, node)], {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
  });
  await log.close();
  child.unref();
  if (child.pid === undefined) throw new WeftError(`cannot start the agent on ${node.name}`);
  await j?.record({ kind: 'process', pid: child.pid, what: `agent ${node.name}` });
  return child.pid;
}

export async function waitReady(node: NodeState, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const r = await agentGet(join(node.dir, 'agent.sock'), '/readyz').catch((e: unknown) => ({
      code: 0,
      body: describeError(e),
    }));
    if (r.code === 200) return;
    last = r.body.trim();
    if (node.agentPid && (await cmdline(node.agentPid)) === undefined) {
      const log = await readFile(join(node.dir, 'agent.log'), 'utf8').catch(() => '');
      throw new WeftError(
        `the agent on ${node.name} exited: ${log.trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new WeftError(`the agent on ${node.name} is not ready after ${timeoutMs / 1000} s: ${last}`);
}

async function attachPods(state: LabState, j: Journal): Promise<void> {
  await Promise.all(state.nodes.map((node) => attachPodsTo(state, node, state.spec.podsPerNode, j)));
}

/** Creates `count` more pods on a node and attaches them through weft-cni, one after another (one runtime per node). */
export async function attachPodsTo(
  state: LabState,
  node: NodeState,
  count: number,
  j: Journal,
): Promise<PodState[]> {
  const first = state.pods.filter((p) => p.node === node.name).length + 1;
  const pods: PodState[] = Array.from({ length: count }, (_, i) => {
    const name = `${node.name}p${first + i}`;
    return {
      name,
      node: node.name,
      netns: nsName(state.name, name),
      ip: '',
      containerId: `${state.name}-${name}`,
    };
  });
  if (pods.length === 0) return [];
  for (const p of pods) await j.record({ kind: 'netns', name: p.netns });
  await ipIn(
    undefined,
    pods.map((p) => `netns add ${p.netns}`),
    'cannot create pod namespaces',
  );
  for (const p of pods) {
    await ipIn(p.netns, ['link set lo up'], 'pod loopback');
    const res = await invokeCni({
      plugin: CNI_PLUGIN,
      command: 'ADD',
      containerId: p.containerId,
      netns: `/run/netns/${p.netns}`,
      ifname: 'eth0',
      config: cniConfig(node),
      hostNetns: node.netns,
    });
    const ips = res.ips as { address: string }[] | undefined;
    const ifs = res.interfaces as { name: string; sandbox?: string }[] | undefined;
    if (!ips?.[0]) throw new WeftError(`weft-cni ADD for ${p.name} returned no address`);
    p.ip = ips[0].address.split('/')[0]!;
    p.hostVeth = ifs?.find((i) => !i.sandbox && i.name !== 'weft0')?.name;
    state.pods.push(p);
  }
  return pods;
}

/** Adds a node to a running lab and starts its agent; unless told not to wait, waits for it and attaches pods. */
export async function labAddNode(
  name: string,
  opts: { pods?: number; waitForReady?: boolean } = {},
): Promise<NodeState> {
  const s = await readState(name);
  const j = new Journal(labDir(name));
  let plan: NodePlan;
  if (s.neutron) {
    plan = await plugNeutronNode(s.spec, s.neutron, labDir(name), j, s.nodes.length);
  } else {
    plan = nodePlan(s.spec, s.nodes.length);
    await j.record({ kind: 'netns', name: plan.netns });
    await ipIn(
      undefined,
      [`netns add ${plan.netns}`, nodeCable(s.spec, plan)],
      `cannot create node ${plan.name}`,
    );
    await ipIn(s.switchNetns, nodeSwitchCmds(plan), `cannot plug node ${plan.name}`);
    await ipIn(plan.netns, nodeHostCmds(plan), `cannot build node ${plan.name}`);
  }
  const node: NodeState = { ...plan, agentPid: 0, dir: join(labDir(name), 'nodes', plan.name) };
  node.agentPid = await startAgent(s, node, j);
  s.nodes.push(node);
  s.spec = { ...s.spec, nodes: s.nodes.length };
  await writeState(s);
  if (opts.waitForReady !== false) {
    await waitReady(node);
    await attachPodsTo(s, node, opts.pods ?? s.spec.podsPerNode, j);
    await writeState(s);
  }
  return node;
}

/** Attaches pods to a node of a running lab (e.g. one that joined without waiting). */
export async function labAttachPods(name: string, nodeName: string, count: number): Promise<PodState[]> {
  const s = await readState(name);
  const node = s.nodes.find((n) => n.name === nodeName);
  if (!node) throw new WeftError(`lab ${name} has no node ${nodeName}`);
  const pods = await attachPodsTo(s, node, count, new Journal(labDir(name)));
  await writeState(s);
  return pods;
}

/** Stops or starts the lab's etcd (same data directory), to rehearse an outage. */
export async function labEtcd(name: string, action: 'stop' | 'start'): Promise<void> {
  const s = await readState(name);
  if (action === 'stop') return killAll([s.etcd.pid]);
  const host = new URL(s.etcd.endpoints[0]!).hostname;
  const e = await startEtcd({ dir: join(labDir(name), 'etcd'), host, netns: s.etcd.netns! });
  await new Journal(labDir(name)).record({ kind: 'process', pid: e.pid, what: 'etcd' });
  s.etcd.pid = e.pid;
  await writeState(s);
}

/** Kills a node's agent (SIGKILL: a crash; SIGTERM: a clean stop) and, unless told otherwise, starts it again. */
export async function labRestartAgent(
  name: string,
  nodeName: string,
  opts: { signal?: 'SIGKILL' | 'SIGTERM'; start?: boolean } = {},
): Promise<NodeState> {
  const s = await readState(name);
  const node = s.nodes.find((n) => n.name === nodeName);
  if (!node) throw new WeftError(`lab ${name} has no node ${nodeName}`);
  if (node.agentPid) {
    try {
      process.kill(node.agentPid, opts.signal ?? 'SIGKILL');
    } catch {
      /* already gone */
    }
    const deadline = Date.now() + 10_000;
    while ((await cmdline(node.agentPid)) !== undefined && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
    node.agentPid = 0;
  }
  if (opts.start !== false) {
    node.agentPid = await startAgent(s, node, new Journal(labDir(name)));
    await writeState(s);
    await waitReady(node);
  } else await writeState(s);
  return node;
}

// ------------------------------------------------------------------------------------------- down
/** Removes everything the lab made: processes, namespaces (with every device in them), files. */
export async function labDown(name: string, progress: Progress = () => undefined): Promise<void> {
  const dir = labDir(name);
  const entries = await Journal.read(dir);
  const pids: number[] = [];
  for (const e of entries) {
    if (e.kind !== 'process') continue;
    const cl = await cmdline(e.pid);
    if (cl && /weft|etcd|socat/.test(cl)) pids.push(e.pid); // never kill a recycled pid
  }
  await killAll(pids);
  // A Neutron underlay: the fixture stops its daemons and removes its namespaces (and the VMs it plugged).
  for (const e of entries)
    if (e.kind === 'fixture')
      await fixture(e.dir, ['stop']).catch((err: unknown) =>
        progress(`neutron fixture stop: ${describeError(err)}`),
      );
  const journaled = entries.flatMap((e) => (e.kind === 'netns' ? [e.name] : []));
  const present = (await listNetns()).filter((ns) => ns.startsWith(labPrefix(name)));
  const doomed = [...new Set([...journaled, ...present])].filter((ns) => present.includes(ns));
  // Pods first, so that CNI-created devices vanish before their nodes.
  doomed.sort((a, b) => b.length - a.length);
  for (const ns of doomed) await destroyNetns(ns);
  await rm(dir, { recursive: true, force: true });
  progress(`lab ${name} removed: ${pids.length} processes, ${doomed.length} namespaces`);
}

// ------------------------------------------------------------------------------------------- status
export interface LabStatus {
  name: string;
  underlay: string;
  backend: string;
  etcd: { netns: string | null; endpoints: string[] };
  nodes: {
    name: string;
    netns: string;
    publicIP: string;
    subnet: string | null;
    agentPid: number;
    ready: boolean;
  }[];
  pods: { name: string; node: string; netns: string; ip: string }[];
  external: { netns: string; ip: string };
  gateway: { netns: string };
}

export async function labStatus(name: string): Promise<LabStatus> {
  const s = await readState(name);
  const nodes = await Promise.all(
    s.nodes.map(async (n) => {
      const env = await readSubnetEnv(join(n.dir, 'subnet.env')).catch(() => undefined);
      const ready =
        (await agentGet(join(n.dir, 'agent.sock'), '/readyz').catch(() => ({ code: 0 }))).code === 200;
      return {
        name: n.name,
        netns: n.netns,
        publicIP: n.publicIP,
        subnet: env ? env.subnet.toString() : null,
        agentPid: n.agentPid,
        ready,
      };
    }),
  );
  return {
    name: s.name,
    underlay: s.underlay,
    backend: s.backend,
    etcd: { netns: s.etcd.netns, endpoints: s.etcd.endpoints },
    nodes,
    pods: s.pods.map((p) => ({ name: p.name, node: p.node, netns: p.netns, ip: p.ip })),
    external: s.external,
    gateway: s.gateway,
  };
}

/** The namespace of a node or pod name ("n1", "n1p2"), or of the lab's etcd/gateway/external hosts. */
export function resolveTarget(s: LabState, target: string): string {
  const n = s.nodes.find((x) => x.name === target) ?? s.pods.find((x) => x.name === target);
  if (n) return n.netns;
  if (target === 'etcd' && s.etcd.netns) return s.etcd.netns;
  if (target === 'gw' || target === 'gateway') return s.gateway.netns;
  if (target === 'ext' || target === 'external') return s.external.netns;
  throw new WeftError(`lab ${s.name} has no node or pod "${target}"`, {
    hint: `nodes: ${s.nodes.map((x) => x.name).join(' ')}; pods: ${s.pods.map((x) => x.name).join(' ')}; also etcd, gw, ext`,
  });
}

// ------------------------------------------------------------------------------------------- backend switch
/**
 * Switches a running lab's backend: new network config in etcd, every agent restarted (a clean
 * restart: the new backend removes what the old one owned), then pod interfaces set to the new MTU
 * (what a runtime would get from re-attaching them).
 */
export async function labSwitchBackend(
  name: string,
  backend: BackendType,
  progress: Progress = () => undefined,
  options?: Record<string, unknown>,
): Promise<LabState> {
  const s = await readState(name);
  const t0 = performance.now();
  await etcdctl(s.etcd, [
    'put',
    '/coreos.com/network/config',
    formatNetworkConfig({
      network: s.spec.network,
      subnetLen: s.spec.subnetLen,
      backend: { type: backend, ...options },
    }),
  ]);
  await killAll(s.nodes.map((n) => n.agentPid).filter(Boolean), 10_000);
  const j = new Journal(labDir(name));
  for (const n of s.nodes) n.agentPid = await startAgent(s, n, j);
  s.backend = backend;
  if (options) s.backendOptions = options;
  else delete s.backendOptions;
  s.spec = { ...s.spec, backend };
  await writeState(s);
  await Promise.all(s.nodes.map((n) => waitReady(n)));
  for (const n of s.nodes) {
    const env = await readSubnetEnv(join(n.dir, 'subnet.env'));
    for (const p of s.pods.filter((x) => x.node === n.name)) {
      await ipIn(p.netns, [`link set eth0 mtu ${env.mtu}`], `cannot set the MTU of ${p.name}`);
      if (p.hostVeth)
        await ipIn(n.netns, [`link set ${p.hostVeth} mtu ${env.mtu}`], `cannot set the MTU of ${p.hostVeth}`);
    }
  }
  progress(`backend switched to ${backend} in ${Math.round(performance.now() - t0) / 1000} s`);
  return s;
}
