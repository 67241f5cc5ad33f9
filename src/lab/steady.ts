import { WeftError } from '../util/errors.js';
import { neutronDropExplanation } from './neutron-evidence.js';
import { untilAnswered } from './ping-rounds.js';
import type { Reachability } from './reachability.js';
import type { LabState, NodeState, PodState } from './state.js';
import type { Progress } from './underlay.js';

/**
 * On a neutron lab the agents' readiness is not the last word: Neutron's agents go on rewriting the
 * ports' chains for a second or two after an API change (pairs, routes, a new port), and a packet
 * sent then can be lost even after an earlier one got through (seen in CI: single pings right after
 * a switch lost about once in five runs). So `lab up`, `lab backend` and `lab node add` return only
 * once a pod of every node has answered a pod of every other node in `rounds` consecutive rounds of
 * single pings, for every pair the data path is meant to carry: the sender's agent carries the peer
 * (not refused), and the packet gets past Neutron's port security (encapsulated between node
 * addresses, or a pod source the port's address pairs cover). A flat or routed lab has no such lag.
 */
export async function waitPodPairsSteady(
  s: LabState,
  reach: Reachability,
  progress: Progress = () => undefined,
  { rounds = 3, timeoutMs = 30_000 } = {},
): Promise<void> {
  if (!s.neutron) return;
  const t0 = performance.now();
  const firstPod = (n: NodeState) => s.pods.find((p) => p.node === n.name);
  const dropped = new Map<string, boolean>();
  const droppedAt = async (n: NodeState, pod: PodState) => {
    if (!dropped.has(n.name)) dropped.set(n.name, (await neutronDropExplanation(s, n, pod.ip)) !== undefined);
    return dropped.get(n.name)!;
  };
  const pairs: [PodState, PodState][] = [];
  for (const a of s.nodes)
    for (const b of s.nodes) {
      const [pa, pb] = [firstPod(a), firstPod(b)];
      const path = reach.carried.find((c) => c.node === a.name && c.publicIP === b.publicIP)?.path;
      if (a === b || !pa || !pb || !path) continue;
      const encapsulated = path === 'vxlan' || path === 'udp';
      if (encapsulated || !(await droppedAt(a, pa))) pairs.push([pa, pb]);
    }
  const left = await untilAnswered(pairs, rounds, timeoutMs);
  if (left.length)
    throw new WeftError(
      `the agents are ready, but pods do not answer steadily after ${timeoutMs / 1000} s: ${left.map(([a, b]) => `${a.name}→${b.name}`).join(' ')}`,
      { hint: `weft lab status --name ${s.name}; Neutron's agents log in ${s.neutron.dir}/log` },
    );
  progress(
    `pods answer steadily: ${pairs.length} node pairs, ${rounds} rounds of single pings (${Math.round(performance.now() - t0) / 1000} s)`,
  );
}
