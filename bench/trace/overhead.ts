/**
 * weft trace benchmark (not a test), on a running lab with at least 2 nodes and 2 pods per node:
 *
 *   node dist/bench/trace/overhead.js --name LAB [--backends vxlan,host-gw] [--reps 3] [--traces 20] [--round 10]
 *
 * 1. For each backend (the lab is switched to it): traces same-node pod to pod, cross-node pod to pod
 *    both ways, and every service of the lab, --reps times each, with netfilter tracing and without:
 *    median round trip and time per segment, and the trace's own set-up and tear-down time.
 * 2. On the last backend: an unrelated iperf3 flow between two other pods on the same two nodes, in
 *    --round-second rounds that alternate: alone, with the tracer attached and armed, and while traces
 *    run back to back, until --traces traces are done: the median throughput ratios.
 */
import { labSwitchBackend, readState } from '../../src/lab/lab.js';
import { readServices } from '../../src/lab/services.js';
import { median } from '../../src/bench/stats.js';
import type { BackendType } from '../../src/config/network-config.js';
import { labTrace } from '../../src/trace/run.js';
import { labNamespaces } from '../../src/trace/lab-target.js';
import { TraceLoader } from '../../src/trace/native.js';
import type { TraceResult } from '../../src/trace/types.js';
import { execIn } from '../../src/kernel/exec.js';

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : dflt;
}
const LAB = arg('name', '');
const BACKENDS = arg('backends', '').split(',').filter(Boolean) as BackendType[];
const REPS = Number(arg('reps', '3'));
const TRACES = Number(arg('traces', '20'));
if (!LAB) {
  console.error(
    'usage: node dist/bench/trace/overhead.js --name LAB [--backends vxlan,host-gw] [--reps 3] [--traces 20] [--round 10]',
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
  execIn(ns, argv, { allowFailure: true, timeoutMs });

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

// The machine is shared: the three conditions alternate in short rounds, and medians are compared.
const ROUND = Number(arg('round', '10'));
console.log(
  `\n# unrelated iperf3 flow ${fromPod.name} → ${toPod.name} (${s.backend}) in ${ROUND} s rounds: none | tracer attached and armed | traces back to back (${tA!.name} → ${tB!.name}), until ${TRACES} traces`,
);
const watched = await labNamespaces(s);
async function armedFlow(): Promise<number> {
  // the BPF programs alone: on every device of the lab, armed for a probe that never comes (nothing
  // is sent to it): the per-packet cost without any trace's set-up work
  const loader = await TraceLoader.start();
  loader.send(
    `probe proto=1 daddr=10.244.255.254 sport=1 dport=0 sig=${'57465451'.padEnd(32, '0')} reply=57465441`,
  );
  for (const n of watched) loader.send(`watch /run/netns/${n.name}`);
  while (loader.events.filter((e) => e.ev === 'watching').length < watched.length)
    await loader.waitFor(() => true, 500);
  loader.send('arm');
  const r = await iperf(ROUND);
  await loader.close();
  return r.gbps;
}
const none: number[] = [];
const armed: number[] = [];
const during: number[] = [];
const traced: TraceResult[] = [];
while (traced.length < TRACES) {
  none.push((await iperf(ROUND)).gbps);
  armed.push(await armedFlow());
  during.push(
    (
      await iperf(ROUND, async () => {
        const deadline = performance.now() + (ROUND - 1) * 1000;
        let n = 0;
        while (traced.length < TRACES && performance.now() < deadline) {
          traced.push(await labTrace(LAB, tA!.name, tB!.name));
          n++;
        }
        return n;
      })
    ).gbps,
  );
  console.log(
    `round ${none.length}: none ${none.at(-1)!.toFixed(2)}, armed ${armed.at(-1)!.toFixed(2)}, during traces ${during.at(-1)!.toFixed(2)} Gbit/s (${traced.length} traces so far)`,
  );
}
console.log(line(`${traced.length} traces during the flow`, traced));
const mNone = median(none);
console.log(
  `iperf3 median over ${none.length} rounds: none ${mNone.toFixed(2)} Gbit/s; tracer armed on all hooks ${median(armed).toFixed(2)} (ratio ${(median(armed) / mNone).toFixed(3)}); during ${traced.length} traces ${median(during).toFixed(2)} (ratio ${(median(during) / mNone).toFixed(3)})`,
);
all.push(...traced);
const setups = all.map((r) => r.timings.setupMs);
const downs = all.map((r) => r.timings.teardownMs);
console.log(
  `trace set-up median ${ms(median(setups))} ms (max ${ms(Math.max(...setups))}), tear-down median ${ms(median(downs))} ms (max ${ms(Math.max(...downs))}) over ${all.length} traces`,
);
