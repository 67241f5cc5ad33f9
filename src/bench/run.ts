import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentGet } from '../agent/client.js';
import { neutronDropExplanation } from '../lab/neutron-evidence.js';
import { BENCH_BACKEND_IDS, benchBackend, runningBackend, type BenchBackend } from './backends.js';
import {
  labAttachPods,
  labSwitchBackend,
  readState,
  type LabState,
  type NodeState,
  type PodState,
} from '../lab/lab.js';
import { WeftError, describeError } from '../util/errors.js';
import { describeEnvironment } from './environment.js';
import {
  crossNodePath,
  discoverHops,
  nativePath,
  pickNodes,
  referencePaths,
  sameNodePath,
  withFastPath,
  type PathPlan,
} from './paths.js';
import type { FastPathMode } from '../config/fast-path-mode.js';
import { buildReference, type Reference } from './reference.js';
import { RESULT_SCHEMA_ID, type BenchResult, type Hop, type PathResult, type Throughput } from './result.js';
import { ratio, stat } from './stats.js';
import {
  MeasurementError,
  iperf3,
  reachable,
  sockperfPingPong,
  toolVersion,
  type LatencySample,
  type ThroughputSample,
} from './tools.js';

/**
 * `weft bench`: on a running lab, measures in one run the underlay between two nodes (native), two
 * pods on one node (the veth + bridge cost alone) and two pods across the same two nodes under every
 * backend asked for, switching the lab's backend between them and restoring it at the end. Each
 * path gets iperf3 with 1 and with 4 streams and a sockperf ping-pong, repeated; each repetition is
 * a round over every backend (and fast path), so that drift in the machine hits every path alike.
 */

export interface BenchOptions {
  lab: string;
  /** Backend ids (backends.ts: every backend, and variants such as udp-batch1 and host-gw+pairs). */
  backends?: string[];
  /** About 1 s per measurement, one repetition: a smoke run, not figures to quote. */
  quick?: boolean;
  seconds?: number;
  repetitions?: number;
  /** Also measure the hand-built paths (plain ip commands, no agent) in the same run. */
  reference?: boolean;
  /** Also measure every backend with the BPF fast path on (rows `<backend>+bpf`, `same-node+bpf`). */
  fastPath?: boolean;
  progress?: (msg: string) => void;
}

const STREAMS = [1, 4] as const;
const WARMUP_SECONDS = 1;
const IPERF_PORT = 5201;
const SOCKPERF_PORT = 11111;

/** What a lab can switch between by default: its underlay decides. */
export function defaultBackends(s: LabState): string[] {
  return s.neutron ? ['neutron', 'vxlan', 'host-gw'] : ['vxlan', 'host-gw'];
}

/** One agent configuration measured: a backend (or variant), with or without the BPF fast path. */
interface Phase {
  backend: BenchBackend;
  fastPath: FastPathMode;
}

interface Samples {
  plan: PathPlan;
  hops: Hop[];
  status: PathResult['status'];
  reason?: string;
  tcp: Record<(typeof STREAMS)[number], ThroughputSample[]>;
  latency: LatencySample[];
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const say = o.progress ?? (() => undefined);
  const startedAt = new Date().toISOString();
  const seconds = o.seconds ?? (o.quick ? 1 : 10);
  const repetitions = o.repetitions ?? (o.quick ? 1 : 3);
  // Asked first so that a missing tool fails before the lab is touched; recorded with the result.
  const tools = {
    iperf3: await toolVersion('iperf3', ['--version']),
    sockperf: await toolVersion('sockperf', ['--version']),
  };

  let s = await readState(o.lab);
  const pair = pickNodes(s);
  if (!pair) {
    throw new WeftError(`lab ${s.name} has ${s.nodes.length} node(s); the bench needs two`, {
      hint: `weft lab up --name ${s.name} --nodes 2 (or more)`,
    });
  }
  const [a, b] = pair;
  s = await ensurePods(s, a, 2, say);
  s = await ensurePods(s, b, 1, say);
  const [pa1, pa2] = s.pods.filter((p) => p.node === a.name) as [PodState, PodState];
  const pb1 = s.pods.find((p) => p.node === b.name)!;

  const ids = o.backends ?? defaultBackends(s);
  const backends: BenchBackend[] = ids.map((id) => {
    const be = benchBackend(id);
    if (!be) throw new WeftError(`unknown backend "${id}"`, { hint: `use ${BENCH_BACKEND_IDS.join(', ')}` });
    const needs = be.type === 'neutron' ? 'neutron' : be.underlay;
    if (needs && s.underlay !== needs)
      throw new WeftError(
        `backend ${id} needs a lab on the ${needs} underlay (lab ${s.name} is ${s.underlay})`,
        {
          hint: `leave it out: --backends ${ids.filter((x) => x !== id).join(',')}`,
        },
      );
    return be;
  });
  const before = runningBackend(s);
  const fastPathBefore: FastPathMode = s.spec.fastPath ?? 'none';
  // Start with the backend the lab already runs (one switch fewer), then in the order asked.
  const backendOrder = [
    ...backends.filter((x) => x.id === before),
    ...backends.filter((x) => x.id !== before),
  ];
  // Each backend plain, then (--fast-path) with the BPF fast path: one agent restart per phase. The
  // fast path leaves udp peers to the stack (their route leads into weft-udp's TUN device, with no
  // next hop to redirect to), so udp+bpf would measure udp again: it gets no phase of its own.
  const order: Phase[] = backendOrder.flatMap((backend) =>
    (o.fastPath && backend.type !== 'udp' ? (['none', 'bpf'] as const) : (['none'] as const)).map(
      (fastPath) => ({ backend, fastPath }),
    ),
  );
  // The same-node path is measured where the pod MTU is the underlay's (no encapsulation), if any.
  const sameNodeUnder =
    backendOrder.find((x) => x.type === 'host-gw' || x.type === 'neutron') ?? backendOrder[0]!;
  const firstPhase = o.reference ? 6 : 1; // native (+ the five hand-built paths)
  const perPhase = (i: number, ph: Phase) =>
    (i === 0 ? firstPhase : 0) + (ph.backend === sameNodeUnder ? 1 : 0) + 1;
  const totalSteps = order.reduce((n, ph, i) => n + perPhase(i, ph), 0) * repetitions * (STREAMS.length + 1);
  let step = 0;
  const tick = (what: string) => say(`[${++step}/${totalSteps}] ${what}`);

  const results: Samples[] = [];
  let ref: Reference | undefined;
  let flannelRef: Reference | undefined;
  try {
    if (o.reference) {
      say('building the hand-built reference paths (plain ip commands, no agent; and with flanneld’s rules)');
      ref = await buildReference(s.spec.mtu);
      flannelRef = await buildReference(s.spec.mtu, { flannel: true });
    }
    // Repetitions are rounds over every phase (snake order: A B C, C B A, A B C, … one switch fewer
    // per round), so that drift in the machine hits every path alike, across backends too.
    const live: Samples[][] = order.map(() => []);
    for (let rep = 1; rep <= repetitions; rep++) {
      const round = [...order.entries()];
      if (rep % 2 === 0) round.reverse();
      for (const [i, ph] of round) {
        if (runningBackend(s) !== ph.backend.id || (s.spec.fastPath ?? 'none') !== ph.fastPath) {
          const fp = ph.fastPath === 'none' ? '' : ' with the BPF fast path';
          say(`switching the lab to ${ph.backend.label}${fp} (agents restart, waiting until reachable)`);
          await labSwitchBackend(s.name, ph.backend.type, undefined, {
            ...ph.backend.switch,
            fastPath: ph.fastPath,
          });
          s = await readState(s.name);
        }
        if (rep === 1) live[i] = await preparePhase(i, ph);
        for (const sm of live[i]!) await measure(sm, rep);
      }
    }
  } finally {
    await ref?.destroy();
    await flannelRef?.destroy();
    const now = await readState(s.name).catch(() => s);
    if (runningBackend(now) !== before || (now.spec.fastPath ?? 'none') !== fastPathBefore) {
      const b = benchBackend(before)!;
      say(`restoring the lab's backend ${b.label}`);
      await labSwitchBackend(s.name, b.type, undefined, { ...b.switch, fastPath: fastPathBefore }).catch(
        (e: unknown) => say(`cannot restore backend ${b.label}: ${describeError(e)}`),
      );
    }
  }

  /** The paths of one phase, checked reachable, their hops read (once, in the first round). */
  async function preparePhase(i: number, { backend, fastPath }: Phase): Promise<Samples[]> {
    const node = (n: NodeState) => s.nodes.find((x) => x.name === n.name)!;
    const phase: PathPlan[] = [];
    const variant = (p: PathPlan) => (fastPath === 'bpf' ? withFastPath(p) : p);
    if (i === 0) phase.push(nativePath(node(a), node(b)), ...(ref ? referencePaths(ref, flannelRef) : []));
    if (backend === sameNodeUnder) phase.push(variant(sameNodePath(node(a), pa1, pa2, backend.label)));
    phase.push(variant(crossNodePath(node(a), node(b), pa1, pb1, backend.id, backend.label)));
    const ready: Samples[] = [];
    for (const plan of phase) {
      const sm: Samples = { plan, hops: [], status: 'ok', tcp: { 1: [], 4: [] }, latency: [] };
      results.push(sm);
      // The lab returns from a switch once its paths answer: what does not answer within seconds will not.
      if (!(await reachable(plan.from, plan.to, plan.kind === 'native' ? 5_000 : 10_000))) {
        sm.status = 'unreachable';
        sm.reason = await whyUnreachable(s, plan);
        say(`${plan.label}: unreachable, not measured: ${sm.reason}`);
        step += repetitions * (STREAMS.length + 1);
        continue;
      }
      sm.hops = await discoverHops(plan);
      say(`${plan.label}: ${sm.hops.map((h) => `${h.host}/${h.device} ${h.mtu}`).join(' → ')}`);
      ready.push(sm);
    }
    return ready;
  }

  async function measure(sm: Samples, rep: number): Promise<void> {
    const { plan } = sm;
    const tag = `${plan.id}, repetition ${rep}/${repetitions}`;
    // A tool that fails once (a slow path flooded by the run before, a loaded machine) runs once
    // more; the second failure is the path's.
    const twice = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
      try {
        return await f();
      } catch (e) {
        if (!(e instanceof MeasurementError)) throw e;
        say(`${tag}: ${what} failed once (${e.message}); running it again`);
        return f();
      }
    };
    try {
      for (const streams of STREAMS) {
        if (sm.status !== 'ok') return;
        const r = await twice(`TCP ${streams}`, () =>
          iperf3(plan.from, plan.to, { streams, seconds, warmup: WARMUP_SECONDS, port: IPERF_PORT }),
        );
        sm.tcp[streams].push(r);
        tick(
          `${tag}: TCP ${streams} stream${streams > 1 ? 's' : ''} ${r.gbps.toFixed(2)} Gbit/s, ${r.retransmits} retransmits`,
        );
      }
      const l = await twice('the round trip', () =>
        sockperfPingPong(plan.from, plan.to, { seconds, port: SOCKPERF_PORT }),
      );
      sm.latency.push(l);
      tick(`${tag}: round trip p50 ${l.p50Us.toFixed(1)} µs, p99 ${l.p99Us.toFixed(1)} µs`);
    } catch (e) {
      if (!(e instanceof MeasurementError)) throw e;
      sm.status = 'failed';
      sm.reason = e.message;
      say(`${tag}: failed: ${e.message}`);
    }
  }

  // Native first, then the same-node path, the cross-node paths in the order measured, the hand-built ones.
  const rank = { native: 0, 'same-node': 1, 'cross-node': 2, reference: 3 } as const;
  const paths = results.map(toPathResult).sort((x, y) => rank[x.kind] - rank[y.kind]);
  const native = paths.find((p) => p.kind === 'native')!;
  for (const p of paths) {
    p.ratios = {
      tcp1: ratio(p.tcp1?.gbps.median, native.tcp1?.gbps.median),
      tcp4: ratio(p.tcp4?.gbps.median, native.tcp4?.gbps.median),
      latencyP50: ratio(p.latency?.p50Us.median, native.latency?.p50Us.median),
      cpuPerGbps: ratio(p.tcp1?.cpuCoresPerGbps.median, native.tcp1?.cpuCoresPerGbps.median),
    };
  }
  const nativeMtu = native.hops.find((h) => h.kind === 'underlay')?.mtu ?? s.spec.mtu;
  return {
    schema: RESULT_SCHEMA_ID,
    tool: { name: 'weft', version: await weftVersion() },
    startedAt,
    finishedAt: new Date().toISOString(),
    lab: { name: s.name, underlay: s.underlay, nodes: s.nodes.length, backendBefore: before },
    settings: {
      seconds,
      warmupSeconds: WARMUP_SECONDS,
      repetitions,
      streams: [...STREAMS],
      quick: o.quick === true,
      reference: o.reference === true,
      fastPath: o.fastPath === true,
      throughputTool: `iperf3 -c DST -t ${seconds} -O ${WARMUP_SECONDS} -P N -J (TCP, receiver-side goodput; the first ${WARMUP_SECONDS} s omitted)`,
      latencyTool: `sockperf ping-pong --tcp --full-rtt -t ${seconds} (14-byte messages, one in flight; sockperf drops a 400 ms warm-up)`,
      rttConvention:
        'full round trip in microseconds (sockperf --full-rtt), not sockperf’s default half round trip',
      cpuMethod:
        'busy jiffies of the whole machine from /proc/stat (user+nice+system+irq+softirq+steal) over the measured seconds, in cores, divided by the Gbit/s moved; both ends run on this machine',
    },
    environment: await describeEnvironment(
      paths.flatMap((p) => p.hops),
      nativeMtu,
      tools,
    ),
    nativePathId: native.id,
    paths,
  };
}

function throughputOf(xs: ThroughputSample[]): Throughput | undefined {
  if (xs.length === 0) return undefined;
  return {
    gbps: stat(xs.map((x) => x.gbps)),
    retransmits: stat(xs.map((x) => x.retransmits)),
    cpuCoresPerGbps: stat(xs.map((x) => (x.gbps > 0 ? x.busyCores / x.gbps : 0))),
    senderCpuPercent: stat(xs.map((x) => x.senderCpuPercent)),
    receiverCpuPercent: stat(xs.map((x) => x.receiverCpuPercent)),
  };
}

function toPathResult(sm: Samples): PathResult {
  const { plan } = sm;
  const l = sm.latency;
  return {
    id: plan.id,
    label: plan.label,
    kind: plan.kind,
    backend: plan.backend,
    ...(plan.fastPath !== undefined && { fastPath: plan.fastPath }),
    from: plan.from,
    to: plan.to,
    hops: sm.hops,
    status: sm.status,
    ...(sm.reason !== undefined && { reason: sm.reason }),
    ...(sm.tcp[1].length > 0 && { tcp1: throughputOf(sm.tcp[1]) }),
    ...(sm.tcp[4].length > 0 && { tcp4: throughputOf(sm.tcp[4]) }),
    ...(l.length > 0 && {
      latency: {
        p50Us: stat(l.map((x) => x.p50Us)),
        p90Us: stat(l.map((x) => x.p90Us)),
        p99Us: stat(l.map((x) => x.p99Us)),
        p999Us: stat(l.map((x) => x.p999Us)),
        meanUs: stat(l.map((x) => x.meanUs)),
      },
    }),
    ratios: { tcp1: null, tcp4: null, latencyP50: null, cpuPerGbps: null },
  };
}

/** Attaches pods through weft-cni until the node has `want` of them (a lab built with fewer). */
async function ensurePods(
  s: LabState,
  n: NodeState,
  want: number,
  say: (m: string) => void,
): Promise<LabState> {
  const have = s.pods.filter((p) => p.node === n.name).length;
  if (have >= want) return s;
  say(`attaching ${want - have} pod(s) to ${n.name} for the bench`);
  await labAttachPods(s.name, n.name, want - have);
  return readState(s.name);
}

/**
 * The sending node's agent knows why a peer is unreachable; on Neutron, the ports say why a path the
 * agent programmed is dropped (port security); else say what was tried.
 */
async function whyUnreachable(s: LabState, plan: PathPlan): Promise<string> {
  const fallback = `no reply to ping from ${plan.from.name} (${plan.from.ip}) to ${plan.to.name} (${plan.to.ip})`;
  if (plan.kind !== 'cross-node') return fallback;
  try {
    const r = await agentGet(join(plan.fromNode.dir, 'agent.sock'), '/status');
    const st = JSON.parse(r.body) as { peers?: { publicIP: string; path: string; reason?: string }[] };
    const peer = st.peers?.find((p) => p.publicIP === plan.toNode.publicIP);
    if (peer?.reason) return `${fallback}: the agent on ${plan.fromNode.name} says: ${peer.reason}`;
    const dropped = s.neutron && (await neutronDropExplanation(s, plan.fromNode, plan.from.ip));
    if (peer && dropped)
      return `dropped: the agent on ${plan.fromNode.name} routes it ${peer.path}, and ${dropped}`;
    if (peer) return `${fallback} (the agent on ${plan.fromNode.name} routes it via ${peer.path})`;
  } catch {
    /* the fallback says enough */
  }
  return fallback;
}

/** weft's version, from package.json. */
export async function weftVersion(): Promise<string> {
  const pkg = fileURLToPath(new URL('../../../package.json', import.meta.url));
  try {
    return (JSON.parse(await readFile(pkg, 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}
