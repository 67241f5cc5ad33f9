import { join } from 'node:path';
import { writeOutputs } from '../bench/output.js';
import type { BenchResult, PathResult } from '../bench/result.js';
import { runBench } from '../bench/run.js';
import type { LabState } from '../lab/lab.js';
import type { DemoContext } from './context.js';
import type { QuantifyResult, QuantifyRow, RowId } from './result.js';
import { TALK_FIGURES, TALK_SOURCE } from './talk.js';

/**
 * Step 3: one `weft bench` run on the same two nodes (on Neutron: one subnet, two hypervisors) with
 * every path of the talk's table, the ratios to native beside the talk's own.
 */

export const FIX_METHOD =
  "host-gw plus the talk's 2016 fix: the lab gives every node port an allowed-address pair for its pod subnet and asks nothing of the router (weft lab backend host-gw --address-pairs: the cloud coordinator with routes off, as weft cloud-routes --pairs-only); the agents run plain host-gw";

interface RowSpec {
  id: RowId;
  label: string;
  /** The bench backend id; undefined for native. */
  backend?: string;
  talk?: keyof typeof TALK_FIGURES;
  neutronOnly?: boolean;
}

const ROWS: RowSpec[] = [
  { id: 'native', label: 'VM to VM (node → node, native)', talk: 'native' },
  {
    id: 'host-gw+pairs',
    label: 'host-gw with the 2016 fix (address pairs)',
    backend: 'host-gw+pairs',
    talk: 'host-gw+pairs',
    neutronOnly: true,
  },
  { id: 'host-gw', label: 'host-gw without the fix', backend: 'host-gw' },
  { id: 'vxlan', label: 'vxlan (overlay on the overlay)', backend: 'vxlan', talk: 'vxlan' },
  // The talk's UDP figure is Flannel's proxy: one packet per system call, no offloads (udp-batch1);
  // weft's udp speaks the same wire format with batches and offloads (src/udp/).
  { id: 'udp', label: "udp (Flannel's wire format, weft's batched data path)", backend: 'udp', talk: 'udp' },
  {
    id: 'udp-batch1',
    label: "udp, batch=1 (as Flannel's 2015 proxy: a packet per system call)",
    backend: 'udp-batch1',
    talk: 'udp',
  },
  { id: 'neutron', label: 'neutron (Neutron routes the pods)', backend: 'neutron', neutronOnly: true },
];

/** The bench backends of the demo's run, starting with the one the lab runs (one switch fewer). */
export function benchBackends(s: LabState): string[] {
  return ROWS.flatMap((r) => (r.backend && (!r.neutronOnly || s.neutron) ? [r.backend] : [])).sort((a, b) =>
    a === s.backend ? -1 : b === s.backend ? 1 : 0,
  );
}

export async function quantify(
  ctx: DemoContext,
  s: LabState,
): Promise<{ result: QuantifyResult; bench: BenchResult }> {
  const bench = await runBench({
    lab: s.name,
    backends: benchBackends(s),
    seconds: ctx.seconds,
    repetitions: ctx.repetitions,
    progress: ctx.progress,
  });
  const dir = join(ctx.out, 'bench');
  await writeOutputs(dir, bench);
  const rows = ROWS.map((r) => toRow(r, bench, s));
  return {
    bench,
    result: {
      rows,
      benchFile: 'bench/result.json',
      seconds: bench.settings.seconds,
      repetitions: bench.settings.repetitions,
      fixMethod: FIX_METHOD,
      talkSource: TALK_SOURCE,
    },
  };
}

function toRow(r: RowSpec, bench: BenchResult, s: LabState): QuantifyRow {
  const pathId = r.backend ? `cross-node/${r.backend}` : 'native';
  const talk = r.talk && TALK_FIGURES[r.talk];
  const head = { id: r.id, label: r.label, pathId, ...(talk && { talk }) };
  if (r.neutronOnly && !s.neutron)
    return {
      ...head,
      status: 'not-applicable',
      reason: 'needs the neutron underlay (weft demo without --underlay flat)',
    };
  const p: PathResult | undefined = bench.paths.find((x) => x.id === pathId);
  if (!p) return { ...head, status: 'failed', reason: 'the bench did not measure this path' };
  if (p.status !== 'ok')
    return {
      ...head,
      status: p.status === 'unreachable' ? 'unreachable' : 'failed',
      ...(p.reason && { reason: p.reason }),
    };
  const mtu = p.hops[0]?.mtu;
  return {
    ...head,
    status: 'measured',
    ...(p.tcp1 && { gbps: p.tcp1.gbps.median }),
    ...(p.tcp4 && { gbps4: p.tcp4.gbps.median }),
    ...(p.ratios.tcp1 !== null && { ratio: p.ratios.tcp1 }),
    ...(p.latency && { rttP50Us: p.latency.p50Us.median }),
    ...(mtu !== undefined && { mtu }),
  };
}

/** A row's measured figure in words ("9.81 Gbit/s, 0.92 × native" or its status). */
export function rowFigure(r: QuantifyRow): string {
  if (r.status === 'measured')
    return `${r.gbps?.toFixed(2) ?? '?'} Gbit/s, ${r.ratio !== undefined ? `${(r.ratio * 100).toFixed(0)} %` : '?'} of native`;
  return r.status === 'unreachable' ? 'dropped (not measured)' : r.status;
}
