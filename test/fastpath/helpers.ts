import { join } from 'node:path';
import { agentGet } from '../../src/agent/client.js';
import { FASTPATH_LOADER } from '../../src/kernel/bpf.js';
import type { NodeState } from '../../src/lab/lab.js';
import { run } from '../../src/util/exec.js';
import { inNs } from '../helpers/lab.js';

/** What the loader sees in a node's namespace: weft's objects and where the program is attached. */
export interface LoaderStatus {
  objects: { cfgMap: number; maps: number[]; program: number; retired: boolean }[];
  attached: Record<string, number[]>;
  pods?: number;
  peers?: number;
}

async function loader(netns: string, args: string[]): Promise<Record<string, unknown>> {
  const r = await inNs(netns, [FASTPATH_LOADER, ...args]);
  if (r.code !== 0) throw new Error(`weft-fastpath ${args.join(' ')} in ${netns}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, unknown>;
}

export const loaderStatus = async (n: NodeState): Promise<LoaderStatus> =>
  (await loader(n.netns, ['status'])) as unknown as LoaderStatus;

/** The program's counters in a node, by the loader's names (fast_local, slow_nat, …): packets. */
export async function kernelCounters(n: NodeState): Promise<Record<string, number>> {
  const c = (await loader(n.netns, ['stats'])).counters as Record<string, [number, number]>;
  return Object.fromEntries(Object.entries(c).map(([k, [p]]) => [k, p]));
}

/** weft_fastpath_packets_total{path,reason} from a node agent's /metrics. */
export async function metricPackets(n: NodeState, path: string, reason: string): Promise<number> {
  const body = (await agentGet(join(n.dir, 'agent.sock'), '/metrics')).body;
  const re = new RegExp(`^weft_fastpath_packets_total\\{path="${path}",reason="${reason}"\\} (\\d+)`, 'm');
  return Number(re.exec(body)?.[1] ?? 0);
}

/** Every id of a BPF program or map that still exists, of the ones given (bpftool, machine-wide). */
export async function survivingBpfObjects(progs: number[], maps: number[]): Promise<string[]> {
  const alive: string[] = [];
  for (const id of progs)
    if ((await run('bpftool', ['prog', 'show', 'id', String(id)], { allowFailure: true })).code === 0)
      alive.push(`prog ${id}`);
  for (const id of maps)
    if ((await run('bpftool', ['map', 'show', 'id', String(id)], { allowFailure: true })).code === 0)
      alive.push(`map ${id}`);
  return alive;
}

/** Pings every `intervalMs` for `count` packets; resolves with [transmitted, received]. */
export async function pingRun(
  fromNs: string,
  ip: string,
  count: number,
  intervalMs: number,
): Promise<[number, number]> {
  const r = await inNs(
    fromNs,
    ['ping', '-n', '-q', '-c', String(count), '-i', String(intervalMs / 1000), '-W', '1', ip],
    { timeoutMs: count * intervalMs + 15_000 },
  );
  const m = /(\d+) packets transmitted, (\d+) received/.exec(r.stdout);
  if (!m) throw new Error(`ping ${ip} from ${fromNs}: ${r.stdout}${r.stderr}`);
  return [Number(m[1]), Number(m[2])];
}
