/**
 * Join-to-reachable benchmark (not a test): on a running lab, adds a node (its agent starts, leases a
 * subnet, programs its data path; one pod is attached through weft-cni) and measures how long until
 * that pod answers a ping from a pod on every other node, i.e. until every other agent has seen the
 * lease and programmed its side (and, on a cloud, the cloud has applied its routes and pairs).
 *
 *   node dist/bench/lab/join.js --name LAB [--joins 3]
 *
 * Each join leaves its node in the lab (a real cluster grows the same way); `weft lab down` removes it.
 * Times: from the start of the join to the agent being ready with the pod attached, and to the first
 * reply from each other node's pod (pings every 50 ms, so a figure is late by at most that).
 */
import { labAddNode, readState, type PodState } from '../../src/lab/lab.js';
import { execIn } from '../../src/kernel/netns.js';
import { median } from '../../src/bench/stats.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
}
const LAB = arg('name', '');
const JOINS = Number(arg('joins', '3'));
if (!LAB) {
  console.error('usage: node dist/bench/lab/join.js --name LAB [--joins 3]');
  process.exit(2);
}

/** Seconds from `t0` until `from` first gets a reply from `to` (or Infinity after 60 s). */
async function firstReply(from: PodState, to: PodState, t0: number): Promise<number> {
  const r = await execIn(from.netns, ['ping', '-c', '1', '-i', '0.05', '-W', '1', '-w', '60', '-q', to.ip], {
    allowFailure: true,
    timeoutMs: 65_000,
  });
  return r.code === 0 ? (performance.now() - t0) / 1000 : Infinity;
}

const rows: { node: string; backend: string; ready: number; p50: number; all: number }[] = [];
for (let i = 0; i < JOINS; i++) {
  const before = await readState(LAB);
  const t0 = performance.now();
  const node = await labAddNode(LAB, { pods: 1 });
  const ready = (performance.now() - t0) / 1000;
  const s = await readState(LAB);
  const pod = s.pods.find((p) => p.node === node.name)!;
  const sources = before.nodes.flatMap((n) => s.pods.find((p) => p.node === n.name) ?? []);
  const times = await Promise.all(sources.map((p) => firstReply(p, pod, t0)));
  rows.push({ node: node.name, backend: s.backend, ready, p50: median(times), all: Math.max(...times) });
  console.log(
    `${node.name} (${s.backend}, ${s.underlay}): agent ready + pod attached ${ready.toFixed(2)} s; ` +
      `reachable from ${sources.length} other nodes' pods: median ${median(times).toFixed(2)} s, all ${Math.max(...times).toFixed(2)} s` +
      (times.some((t) => t === Infinity) ? ' (SOME NEVER ANSWERED within 60 s)' : ''),
  );
}
const m = (k: 'ready' | 'all') => median(rows.map((r) => r[k])).toFixed(2);
console.log(
  `median over ${rows.length} joins: ready ${m('ready')} s, reachable from every node ${m('all')} s`,
);
