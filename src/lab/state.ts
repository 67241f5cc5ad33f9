import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BackendOptions, BackendType } from '../config/network-config.js';
import { WeftError } from '../util/errors.js';
import { LAB_ROOT, labDir } from './journal.js';
import type { NeutronLab } from './neutron-underlay.js';
import type { LabSpec } from './spec.js';

/**
 * A lab's state, as state.json in its directory: what `lab up` built (namespaces, addresses, the
 * agents' pids, the pods), read by every later `weft lab` command.
 */

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
  backendOptions?: BackendOptions;
  spec: LabSpec;
  createdAt: string;
  etcd: { netns: string | null; endpoints: string[]; pid: number };
  gateway: { netns: string };
  external: { netns: string; ip: string };
  switchNetns: string;
  /** The Neutron resources of a neutron underlay. */
  neutron?: NeutronLab;
  /**
   * The talk's 2016 fix is in place: the lab (as Magnum's Heat templates did) gave every node port the
   * address pairs of its pod subnet, no router routes (address-pairs.ts); removed at the next switch.
   */
  addressPairs?: boolean;
  nodes: NodeState[];
  pods: PodState[];
  /** Seconds `lab up` took, by phase. */
  timings: Record<string, number>;
}

export const nsName = (lab: string, role: string): string => `wl-${lab}-${role}`;
export const labPrefix = (lab: string): string => `wl-${lab}-`;

export async function readState(name: string): Promise<LabState> {
  try {
    return JSON.parse(await readFile(join(labDir(name), 'state.json'), 'utf8')) as LabState;
  } catch {
    throw new WeftError(`no lab named "${name}" is up`, {
      hint: 'see `weft lab status` for the labs on this machine, or `weft lab up --name NAME`',
    });
  }
}

/** Replaces state.json atomically (a reader never sees half a file). */
export async function writeState(s: LabState): Promise<void> {
  const path = join(labDir(s.name), 'state.json');
  await writeFile(`${path}.tmp`, JSON.stringify(s, null, 2));
  await rename(`${path}.tmp`, path);
}

export async function listLabs(): Promise<string[]> {
  try {
    return (await readdir(LAB_ROOT)).sort();
  } catch {
    return [];
  }
}

function findNamed<T extends { name: string }>(s: LabState, list: T[], what: string, name: string): T {
  const x = list.find((e) => e.name === name);
  if (!x)
    throw new WeftError(`lab ${s.name} has no ${what} ${name}`, {
      hint: `${what}s: ${list.map((e) => e.name).join(' ') || 'none'}`,
    });
  return x;
}

export const findNode = (s: LabState, name: string): NodeState => findNamed(s, s.nodes, 'node', name);
export const findPod = (s: LabState, name: string): PodState => findNamed(s, s.pods, 'pod', name);

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
