import { agentGet } from '../agent/client.js';
import { WeftError, describeError } from '../util/errors.js';
import { agentFiles } from './agents.js';
import type { LabState, NodeState } from './state.js';
import type { Progress } from './underlay.js';

/**
 * The lab's wait for reachability: `lab up` and `lab backend` return only when every node's agent
 * says it is ready, knows every other node, has no peer pending (a cloud path counts once its data
 * path answered a probe: src/agent/peer-readiness.ts) and has finished releasing what an earlier
 * backend left in the cloud. Peers no path can carry (host-gw and a node behind a router) are
 * refused by name; they are reported, not waited for.
 */

interface PeerView {
  subnet: string;
  publicIP: string;
  path: string;
  state?: string;
  reason?: string;
}

interface AgentView {
  ready: { ready: boolean; reasons: string[] };
  peers: PeerView[];
  earlierCloud?: { state: string; pairs: number; routes: number; reason?: string };
}

export interface RefusedPeer {
  node: string;
  peer: string;
  publicIP: string;
  reason: string;
}

export interface Reachability {
  /** Peer paths (ordered node pairs) that are ready. */
  ready: number;
  /** Those paths: the sending node, the peer's public IP, and how its agent carries it. */
  carried: { node: string; publicIP: string; path: string }[];
  refused: RefusedPeer[];
  /** Cloud objects an earlier backend left that could not be released, per node. */
  leftInCloud: { node: string; reason: string }[];
  seconds: number;
}

async function view(n: NodeState): Promise<AgentView | string> {
  try {
    const r = await agentGet(agentFiles(n.dir).socket, '/status');
    if (r.code !== 200) return `status ${r.code}`;
    return JSON.parse(r.body) as AgentView;
  } catch (e) {
    return describeError(e);
  }
}

/** Why a node is not there yet (undefined: it is). */
function waitingFor(n: NodeState, v: AgentView | string, others: number): string | undefined {
  if (typeof v === 'string') return `${n.name}: ${v}`;
  if (!v.ready.ready) return `${n.name}: not ready: ${v.ready.reasons.join('; ')}`;
  if (v.peers.length < others) return `${n.name}: knows ${v.peers.length} of ${others} peers`;
  const pending = v.peers.filter((p) => p.state === 'pending');
  if (pending.length)
    return `${n.name}: ${pending.map((p) => `${p.subnet} pending (${p.reason ?? ''})`).join('; ')}`;
  const c = v.earlierCloud?.state;
  if (c === 'checking' || c === 'releasing')
    return `${n.name}: releasing the cloud objects of an earlier backend`;
  return undefined;
}

export async function waitReachable(
  s: LabState,
  progress: Progress = () => undefined,
  timeoutMs = 90_000,
): Promise<Reachability> {
  const t0 = performance.now();
  const deadline = Date.now() + timeoutMs;
  // Nodes without an agent (a bare node a test programs as flanneld would) have nothing to ask.
  const nodes = s.nodes.filter((n) => n.agentPid);
  const others = nodes.length - 1;
  for (;;) {
    const views = await Promise.all(nodes.map(view));
    const waiting = nodes
      .map((n, i) => waitingFor(n, views[i]!, others))
      .filter((x): x is string => x !== undefined);
    if (waiting.length === 0) {
      const all = views as AgentView[];
      const res: Reachability = {
        ready: all.reduce((k, v) => k + v.peers.filter((p) => p.state !== 'refused').length, 0),
        carried: all.flatMap((v, i) =>
          v.peers
            .filter((p) => p.state !== 'refused')
            .map((p) => ({ node: nodes[i]!.name, publicIP: p.publicIP, path: p.path })),
        ),
        refused: all.flatMap((v, i) =>
          v.peers
            .filter((p) => p.state === 'refused')
            .map((p) => ({
              node: nodes[i]!.name,
              peer: s.nodes.find((x) => x.publicIP === p.publicIP)?.name ?? p.subnet,
              publicIP: p.publicIP,
              reason: p.reason ?? '',
            })),
        ),
        leftInCloud: all.flatMap((v, i) =>
          v.earlierCloud && ['failed', 'unconfigured'].includes(v.earlierCloud.state)
            ? [{ node: nodes[i]!.name, reason: v.earlierCloud.reason ?? v.earlierCloud.state }]
            : [],
        ),
        seconds: Math.round(performance.now() - t0) / 1000,
      };
      progress(
        `reachable: ${res.ready} peer paths ready${res.refused.length ? `, ${res.refused.length} refused` : ''} (${res.seconds} s after the agents were up)`,
      );
      for (const r of res.refused) progress(`  ${r.node} → ${r.peer}: refused: ${r.reason}`);
      for (const l of res.leftInCloud) progress(`  ${l.node}: left in the cloud: ${l.reason}`);
      return res;
    }
    if (Date.now() > deadline)
      throw new WeftError(`the lab is not reachable after ${timeoutMs / 1000} s: ${waiting.join(' | ')}`, {
        hint: `weft lab status --name ${s.name}; weft status --socket ${agentFiles(s.nodes[0]!.dir).socket}`,
      });
    await new Promise((r) => setTimeout(r, 100));
  }
}
