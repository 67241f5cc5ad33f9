import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { WeftError, describeError } from '../util/errors.js';
import { startAgent, waitReady } from './agents.js';
import { putNetworkConfig, startLabEtcd } from './etcd.js';
import { Journal, labDir } from './journal.js';
import { cmdline, destroyNetns, killAll, listNetns } from './netns.js';
import { fixture } from './neutron-underlay.js';
import { attachPodsTo } from './pods.js';
import { waitReachable } from './reachability.js';
import type { LabSpec } from './spec.js';
import { waitPodPairsSteady } from './steady.js';
import { labPrefix, listLabs, writeState, type LabState } from './state.js';
import { buildTopology, type Progress } from './underlay.js';

/**
 * A cluster on one machine (what Magnum did for the talk): nodes and pods are network namespaces on an
 * underlay, a real etcd holds the network config and leases, the real agent runs in every node, and
 * pods are attached by the real CNI plugin over the CNI protocol, exactly as a runtime would.
 *
 * This module brings a whole lab up and down; the parts live beside it: state.ts (state.json),
 * topology.ts (the flat and routed plans, pure), underlay.ts (building them; neutron), agents.ts
 * (starting, supervising, restarting agents), pods.ts (CNI attach and detach), nodes.ts (nodes
 * joining and leaving), etcd.ts (the lab's etcd), backend.ts (switching backends), status.ts.
 */

export {
  agentArgs,
  labKillAgent,
  labRestartAgent,
  startAgent,
  waitReady,
  AGENT_METRICS_PORT,
} from './agents.js';
export { labSwitchBackend, type SwitchOptions } from './backend.js';
export { waitReachable, type Reachability } from './reachability.js';
export { labEtcd } from './etcd.js';
export { labAddNode, labRemoveNode } from './nodes.js';
export { attachPodsTo, cniConfig, labAttachPods, labDetachPod, CNI_PLUGIN } from './pods.js';
export { labStatus, type LabStatus } from './status.js';
export {
  labPrefix,
  listLabs,
  nsName,
  readState,
  resolveTarget,
  writeState,
  type LabState,
  type NodeState,
  type PodState,
} from './state.js';
export { ETCD_IP, EXTERNAL_IP } from './topology.js';

// ------------------------------------------------------------------------------------------- up
/** In a lab's directory: the pid of the supervisor that made it (WEFT_LAB_OWNER), when there is one. */
export const LAB_OWNER_FILE = 'owner-pid';

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
  // A lab made under a supervisor that outlives its commands (the test runner) names it, so that the
  // supervisor's next start can take down what a killed run left behind (scripts/run-tests.mjs).
  const owner = process.env.WEFT_LAB_OWNER;
  if (owner && /^\d+$/.test(owner)) await writeFile(join(dir, LAB_OWNER_FILE), `${owner}\n`);
  try {
    let t = performance.now();
    const topo = await buildTopology(spec, dir, j, progress);
    mark('underlay', t);
    progress(`underlay ${spec.underlay}: ${spec.nodes} nodes, gateway, external host`);

    t = performance.now();
    const etcdNs = topo.etcd.netns;
    const etcd = await startLabEtcd(spec.name, etcdNs, topo.etcd.ip, j);
    await putNetworkConfig({ netns: etcdNs, endpoints: [etcd.endpoint] }, spec, spec.backend);
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
    // Ready means reachable: every peer path the agents can carry has answered (cloud paths probed).
    t = performance.now();
    const reach = await waitReachable(state, progress);
    mark('reachable', t);

    t = performance.now();
    await Promise.all(state.nodes.map((node) => attachPodsTo(state, node, spec.podsPerNode, j)));
    mark('pods', t);
    await waitPodPairsSteady(state, reach, progress);
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
