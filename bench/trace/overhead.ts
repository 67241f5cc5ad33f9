/**
 * weft trace benchmark (not a test), on a running lab with at least 2 nodes and 2 pods per node:
 *
 *   node dist/bench/trace/overhead.js --name LAB [--backends vxlan,host-gw] [--reps 3] [--traces 20] [--seconds 30]
 *
 * 1. For each backend (the lab is switched to it): traces same-node pod to pod, cross-node pod to pod
 *    both ways, and every service of the lab, --reps times each, with netfilter tracing and without:
 *    median round trip and time per segment, and the trace's own set-up and tear-down time.
 * 2. On the last backend: an unrelated iperf3 flow between two other pods on the same two nodes, for
 *    --seconds alone and again while --traces traces run back to back: the throughput ratio.
 */
import { labSwitchBackend, readState } from '../../src/lab/lab.js';
import { readServices } from '../../src/lab/services.js';
import { median } from '../../src/bench/stats.js';
import type { BackendType } from '../../src/config/network-config.js';
import { labTrace } from '../../src/trace/run.js';
import { labNamespaces } from '../../src/trace/lab-target.js';
import { TraceLoader } from '../../src/trace/native.js';
import type { TraceResult } from '../../src/trace/types.js';
import { run } from '../../src/util/exec.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
}
const LAB = arg('name', '');
const BACKENDS = arg('backends', '').split(',').filter(Boolean) as BackendType[];
const REPS = Number(arg('reps', '3'));
const TRACES = Number(arg('traces', '20'));
const SECONDS = Number(arg('seconds', '30'));
if (!LAB) {
  console.error(
    'usage: node dist/bench/trace/overhead.js --name LAB [--backends vxlan,host-gw] [--reps 3] [--traces 20] [--seconds 30]',
  );
  process.exit(2);
}

const us = (ns: number) => (ns / 1000).toFixed(1);
const ms = (x: number) => x.toFixed(0);

async function cases(): Promise<[string, string, string][]> {
  const s = await readState(LAB);
  const onNode = (n: string) => s.pods.filter((p) => p.node === n);
  const [a, b] = onNode('n1');
  const [c] = onNode('n2');
  if (!a || !b || !c) throw new Error('the lab needs 2 pods on n1 and one on n2');
  const out: [string, string, string][] = [
    ['same node', a.name, b.name],
    ['across nodes', a.name, c.name],
    ['across nodes, back', c.name, a.name],
  ];
  for (const svc of await readServices(LAB))
    if (svc.endpoints.length) out.push([`service ${svc.name}`, a.name, svc.name]);
  return out;
}

function line(label: string, runs: TraceResult[]): string {
  const ok = runs.filter((r) => r.summary.rttNs !== undefined);
  const rtt = median(ok.map((r) => r.summary.rttNs!));
  const segs = new Map<string, number[]>();
  for (const r of ok)
    for (const sg of r.summary.segments) segs.set(sg.segment, [...(segs.get(sg.segment) ?? []), sg.ns]);
  const split = [...segs.entries()].map(([k, v]) => `${k} ${us(median(v))}`).join(', ');
  const verdicts = [...new Set(runs.map((r) => r.summary.verdict))].join('/');
  return `${label.padEnd(44)} ${verdicts.padEnd(9)} rtt ${ok.length ? us(rtt) : '-'} µs  [${split}]  set-up ${ms(median(runs.map((r) => r.timings.setupMs)))} ms, tear-down ${ms(median(runs.map((r) => r.timings.teardownMs)))} ms`;
}

const state = await readState(LAB);
/** How long one trace takes end to end (from the runs above), to size the flow that must hold 20. */
const perTraceMs = () =>
  all.length
    ? median(all.map((r) => r.timings.setupMs + r.timings.probeMs + r.timings.teardownMs + 400))
    : 3000;
const all: TraceResult[] = [];
for (const backend of REPS > 0 ? (BACKENDS.length ? BACKENDS : [state.backend]) : []) {
  if ((await readState(LAB)).backend !== backend) await labSwitchBackend(LAB, backend);
  console.log(`\n# backend ${backend} (${state.underlay} underlay), median of ${REPS}; µs per segment`);
  for (const [label, from, to] of await cases()) {
    for (const netfilter of [true, false]) {
      const runs: TraceResult[] = [];
      for (let i = 0; i < REPS; i++) runs.push(await labTrace(LAB, from, to, { netfilter }));
      all.push(...runs);
      console.log(line(`${label} (${from} → ${to})${netfilter ? '' : ', no nft tracing'}`, runs));
    }
  }
}

// ---- an unrelated flow during traces
const s = await readState(LAB);
const [tA, ,] = s.pods.filter((p) => p.node === 'n1');
const [tB] = s.pods.filter((p) => p.node === 'n2');
const fromPod = s.pods.filter((p) => p.node === 'n1')[1]!;
const toPod = s.pods.filter((p) => p.node === 'n2')[1] ?? s.pods.filter((p) => p.node === 'n2')[0]!;
const inNs = (ns: string, argv: string[], timeoutMs: number) =>
  run('ip', ['netns', 'exec', ns, ...argv], { allowFailure: true, timeoutMs });

async function iperf(
  seconds: number,
  during?: () => Promise<number>,
): Promise<{ gbps: number; traces: number }> {
  const server = inNs(toPod.netns, ['iperf3', '-s', '-1', '-p', '5301'], (seconds + 30) * 1000);
  await new Promise((r) => setTimeout(r, 300));
  const client = inNs(
    fromPod.netns,
    ['iperf3', '-c', toPod.ip, '-p', '5301', '-t', String(seconds), '-J'],
    (seconds + 30) * 1000,
  );
  const traces = during ? await during() : 0;
  const r = await client;
  await server;
  const j = JSON.parse(r.stdout) as { end: { sum_received: { bits_per_second: number } } };
  return { gbps: j.end.sum_received.bits_per_second / 1e9, traces };
}

console.log(
  `\n# unrelated iperf3 flow ${fromPod.name} → ${toPod.name} (${s.backend}), ${SECONDS} s each; traces ${tA!.name} → ${tB!.name}`,
);
const alone = await iperf(SECONDS);
// the BPF programs alone: attached to every device of the lab and armed for a probe that never
// comes (nothing is sent to it), for the whole flow: the per-packet cost without any trace's set-up
const loader = await TraceLoader.start();
const watched = await labNamespaces(s);
loader.send(
  `probe proto=1 daddr=10.244.255.254 sport=1 dport=0 sig=${'57465451'.padEnd(32, '0')} reply=57465441`,
);
for (const n of watched) loader.send(`watch /run/netns/${n.name}`);
while (loader.events.filter((e) => e.ev === 'watching').length < watched.length)
  await loader.waitFor(() => true, 500);
loader.send('arm');
const attached = await iperf(SECONDS);
loader.send('stats');
const st = await loader.waitFor((e) => e.ev === 'stats', 2000);
await loader.close();
console.log(
  `iperf3 with the tracer attached to all ${st && st.ev === 'stats' ? st.links : '?'} hooks and armed (no trace running): ${attached.gbps.toFixed(2)} Gbit/s, ratio ${(attached.gbps / alone.gbps).toFixed(3)}`,
);
// long enough for --traces traces back to back (sized from the traces above)
const flowSeconds = Math.max(SECONDS, Math.min(180, Math.ceil((TRACES * perTraceMs()) / 1000) + 6));
const during = await iperf(flowSeconds, async () => {
  await new Promise((r) => setTimeout(r, 1000));
  const deadline = performance.now() + (flowSeconds - 3) * 1000;
  let n = 0;
  const times: TraceResult[] = [];
  while (n < TRACES && performance.now() < deadline) {
    times.push(await labTrace(LAB, tA!.name, tB!.name));
    n++;
  }
  console.log(line(`${n} traces during the flow`, times));
  return n;
});
console.log(
  `iperf3 alone ${alone.gbps.toFixed(2)} Gbit/s, during ${during.traces} traces ${during.gbps.toFixed(2)} Gbit/s: ratio ${(during.gbps / alone.gbps).toFixed(3)}`,
);
const setups = all.map((r) => r.timings.setupMs);
const downs = all.map((r) => r.timings.teardownMs);
console.log(
  `trace set-up median ${ms(median(setups))} ms (max ${ms(Math.max(...setups))}), tear-down median ${ms(median(downs))} ms (max ${ms(Math.max(...downs))}) over ${all.length} traces`,
);
