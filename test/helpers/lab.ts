import { randomBytes } from 'node:crypto';
import { labDown, labUp, readState, type LabState } from '../../src/lab/lab.js';
import { validateSpec, type LabSpec } from '../../src/lab/spec.js';
import { run, type RunResult } from '../../src/util/exec.js';

/** A unique lab name for a test (labs of parallel tests never share a namespace). */
export const uniqueName = (prefix = 't'): string => `${prefix}${randomBytes(3).toString('hex')}`.slice(0, 8);

/** Brings a lab up; the returned dispose() removes it (use it in t.after / finally). */
export async function upLab(spec: Partial<LabSpec>): Promise<{ state: LabState; down: () => Promise<void> }> {
  const name = spec.name ?? uniqueName();
  let downed = false;
  const down = async () => {
    if (!downed) await labDown(name);
    downed = true;
  };
  try {
    await labUp(validateSpec({ ...spec, name }));
  } catch (e) {
    await down();
    throw e;
  }
  return { state: await readState(name), down };
}

export function inNs(
  ns: string,
  argv: string[],
  opts: { allowFailure?: boolean; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return run('ip', ['netns', 'exec', ns, ...argv], { allowFailure: true, timeoutMs: 30_000, ...opts });
}

/** One ping from a namespace; true when a reply came back. */
export async function pings(ns: string, ip: string, count = 1): Promise<boolean> {
  const r = await inNs(ns, ['ping', '-c', String(count), '-W', '1', '-i', '0.2', '-q', ip]);
  return r.code === 0;
}

/** Every pod pings every other pod; returns the pairs that failed as "from->to". */
export async function allPairsFailures(
  state: LabState,
  filter: (from: string, to: string) => boolean = () => true,
): Promise<string[]> {
  const failures: string[] = [];
  for (const a of state.pods) {
    const results = await Promise.all(
      state.pods
        .filter((b) => b !== a && filter(a.node, b.node))
        .map(async (b) => ({ b, ok: (await pings(a.netns, b.ip)) || (await pings(a.netns, b.ip, 2)) })),
    );
    for (const r of results) if (!r.ok) failures.push(`${a.name}->${r.b.name}`);
  }
  return failures;
}
