import { WeftError } from '../util/errors.js';
import { execIn } from './netns.js';
import { neutronDropExplanation } from './neutron-evidence.js';
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

/**
 * Single pings (1 s timeout) from the first pod of each pair to the second, all pairs at once, in
 * rounds until each pair has answered `rounds` rounds in a row; returns the pairs that had not when
 * `timeoutMs` ran out (none: all answered).
 */
export async function untilAnswered(
  pairs: (readonly [PodState, PodState])[],
  rounds: number,
  timeoutMs: number,
): Promise<(readonly [PodState, PodState])[]> {
  const streak = new Map(pairs.map((p) => [p, 0]));
  const deadline = Date.now() + timeoutMs;
  let left = [...pairs];
  while (left.length) {
    const ok = await Promise.all(
      left.map(async ([pa, pb]) => {
        const r = await execIn(pa.netns, ['ping', '-n', '-q', '-c', '1', '-W', '1', pb.ip], {
          allowFailure: true,
        });
        return r.code === 0;
      }),
    );
    left.forEach((p, i) => streak.set(p, ok[i] ? streak.get(p)! + 1 : 0));
    left = left.filter((p) => streak.get(p)! < rounds);
    if (!left.length || Date.now() > deadline) break;
    if (rounds > 1) await new Promise((r) => setTimeout(r, 200));
  }
  return left;
}
