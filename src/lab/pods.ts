import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { invokeCni } from '../cni/invoke.js';
import { WeftError, describeError } from '../util/errors.js';
import { Journal, labDir } from './journal.js';
import { destroyNetns, ipIn } from './netns.js';
import {
  findNode,
  findPod,
  nsName,
  readState,
  writeState,
  type LabState,
  type NodeState,
  type PodState,
} from './state.js';

/** Pods: network namespaces attached to their node through weft-cni over the CNI protocol, as a runtime does. */

/** The native shim (served by each node's agent) when it was built, else the Node plugin itself. */
const CNI_SHIM = fileURLToPath(new URL('../cni/weft-cni', import.meta.url));
export const CNI_PLUGIN = existsSync(CNI_SHIM)
  ? CNI_SHIM
  : fileURLToPath(new URL('../cni/main.js', import.meta.url));

export function cniConfig(node: NodeState): Record<string, unknown> {
  return {
    cniVersion: '1.1.0',
    name: 'weft',
    type: 'weft-cni',
    subnetFile: join(node.dir, 'subnet.env'),
    dataDir: join(node.dir, 'cni'),
    bridge: 'weft0',
    isDefaultGateway: true,
    // as Flannel's default CNI config: a pod reaching itself through a service VIP (hairpin)
    hairpinMode: true,
  };
}

/** The CNI call for a pod, as its node's runtime makes it. */
function cniCall(node: NodeState, p: PodState, command: 'ADD' | 'DEL') {
  return invokeCni({
    plugin: CNI_PLUGIN,
    command,
    containerId: p.containerId,
    netns: `/run/netns/${p.netns}`,
    ifname: 'eth0',
    config: cniConfig(node),
    hostNetns: node.netns,
  });
}

/** The index of a node's next pod: one past the highest in use (names are never reused). */
function nextPodIndex(state: LabState, node: NodeState): number {
  const re = new RegExp(`^${node.name}p(\\d+)$`);
  return Math.max(0, ...state.pods.map((p) => Number(re.exec(p.name)?.[1] ?? 0))) + 1;
}

/** Creates `count` more pods on a node and attaches them through weft-cni, one after another (one runtime per node). */
export async function attachPodsTo(
  state: LabState,
  node: NodeState,
  count: number,
  j: Journal,
): Promise<PodState[]> {
  const first = nextPodIndex(state, node);
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
    const res = await cniCall(node, p, 'ADD');
    const ips = res.ips as { address: string }[] | undefined;
    const ifs = res.interfaces as { name: string; sandbox?: string }[] | undefined;
    if (!ips?.[0]) throw new WeftError(`weft-cni ADD for ${p.name} returned no address`);
    p.ip = ips[0].address.split('/')[0]!;
    p.hostVeth = ifs?.find((i) => !i.sandbox && i.name !== 'weft0')?.name;
    state.pods.push(p);
  }
  return pods;
}

/**
 * Detaches a pod through weft-cni (DEL: its veth and address released) and removes its namespace. A
 * failing DEL is an error, unless `onDelFailed` is given (the node is going away anyway): then it is
 * reported there and the namespace is removed all the same.
 */
export async function detachPod(
  state: LabState,
  pod: PodState,
  onDelFailed?: (why: string) => void,
): Promise<void> {
  const node = findNode(state, pod.node);
  try {
    await cniCall(node, pod, 'DEL');
  } catch (e) {
    if (!onDelFailed) throw e;
    onDelFailed(describeError(e));
  }
  await destroyNetns(pod.netns);
  state.pods = state.pods.filter((p) => p !== pod);
}

/** Attaches pods to a node of a running lab (e.g. one that joined without waiting). */
export async function labAttachPods(name: string, nodeName: string, count: number): Promise<PodState[]> {
  const s = await readState(name);
  const pods = await attachPodsTo(s, findNode(s, nodeName), count, new Journal(labDir(name)));
  await writeState(s);
  return pods;
}

/** Detaches a pod of a running lab and removes it. */
export async function labDetachPod(name: string, podName: string): Promise<void> {
  const s = await readState(name);
  await detachPod(s, findPod(s, podName));
  await writeState(s);
}
