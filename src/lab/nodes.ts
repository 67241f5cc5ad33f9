import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { agentRequest } from '../agent/client.js';
import { readSubnetEnv } from '../config/subnet-env.js';
import { subnetKey, DEFAULT_PREFIX } from '../store/lease.js';
import { describeError } from '../util/errors.js';
import { agentFiles, startAgent, stopAgent, waitReady } from './agents.js';
import { etcdctl } from './etcd.js';
import { Journal, labDir } from './journal.js';
import { cmdline } from './netns.js';
import { attachPodsTo, detachPod } from './pods.js';
import { waitReachable } from './reachability.js';
import { findNode, readState, writeState, type NodeState } from './state.js';
import { waitPodPairsSteady } from './steady.js';
import { nextNodeIndex } from './topology.js';
import { assertNodeCanLeave, joinUnderlay, leaveUnderlay, type Progress } from './underlay.js';

/** Nodes joining and leaving a running lab. */

/**
 * Adds a node to a running lab and starts its agent; unless told not to wait, waits until it is ready
 * and every node reaches every other (ready means reachable: on a neutron lab, the new node's cloud
 * paths have answered their probes both ways), then attaches pods. `agent: false` plugs a bare node
 * into the underlay (for a node a test builds as flanneld would).
 */
export async function labAddNode(
  name: string,
  opts: { pods?: number; waitForReady?: boolean; agent?: boolean; progress?: Progress } = {},
): Promise<NodeState> {
  const s = await readState(name);
  const j = new Journal(labDir(name));
  const plan = await joinUnderlay(s, labDir(name), j, nextNodeIndex(s.nodes));
  const node: NodeState = { ...plan, agentPid: 0, dir: join(labDir(name), 'nodes', plan.name) };
  if (opts.agent !== false) node.agentPid = await startAgent(s, node, j);
  s.nodes.push(node);
  s.spec = { ...s.spec, nodes: s.nodes.length };
  await writeState(s);
  if (opts.waitForReady !== false && opts.agent !== false) {
    await waitReady(node);
    const reach = await waitReachable(s, opts.progress);
    await attachPodsTo(s, node, opts.pods ?? s.spec.podsPerNode, j);
    await writeState(s);
    await waitPodPairsSteady(s, reach, opts.progress);
  }
  return node;
}

/**
 * Removes a node as an operator would: its pods detached, then the node leaves the cluster (its agent
 * releases the lease and the data path, so the other nodes stop routing to it at once), then its
 * namespace and files go. An agent that is not running has its lease deleted from etcd instead.
 */
export async function labRemoveNode(
  name: string,
  nodeName: string,
  progress: Progress = () => undefined,
): Promise<void> {
  const s = await readState(name);
  const node = findNode(s, nodeName);
  assertNodeCanLeave(s, node.name);
  for (const p of s.pods.filter((x) => x.node === node.name)) {
    await detachPod(s, p, (why) => progress(`pod ${p.name}: ${why}; its namespace is removed anyway`));
  }
  await writeState(s);
  const left = await agentRequest(agentFiles(node.dir).socket, '/leave', 'POST').catch(() => undefined);
  if (left?.code === 200) {
    const deadline = Date.now() + 10_000;
    while ((await cmdline(node.agentPid)) !== undefined && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 50));
  }
  await stopAgent(node, 'SIGKILL'); // whatever is left of it
  if (left?.code !== 200) {
    progress(
      `the agent on ${node.name} did not leave (${left ? left.body.trim() : 'not running'}): deleting its lease`,
    );
    const env = await readSubnetEnv(join(node.dir, 'subnet.env')).catch(() => undefined);
    if (env)
      await etcdctl(s.etcd, ['del', subnetKey(DEFAULT_PREFIX, env.subnet)]).catch((e: unknown) =>
        progress(`cannot delete the lease of ${node.name}: ${describeError(e)}`),
      );
  }
  await leaveUnderlay(s, node);
  await rm(node.dir, { recursive: true, force: true });
  s.nodes = s.nodes.filter((n) => n !== node);
  s.spec = { ...s.spec, nodes: s.nodes.length };
  await writeState(s);
  progress(`node ${node.name} removed`);
}
