import { WeftError } from '../util/errors.js';
import { killAll } from '../util/process.js';
import { batch, type BatchFailure } from './batch.js';
import { runTool } from './exec.js';

/**
 * Named network namespaces (/run/netns/NAME): create, list, configure, run programs in, destroy.
 * Labs, benchmarks and tests build everything they need in namespaces of their own with these.
 */

export { execIn, execInteractive, pingOnce, spawnIn } from './exec.js';

export async function listNetns(): Promise<string[]> {
  const r = await runTool('ip', ['netns', 'list']);
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Creates namespaces in one `ip` process; throws naming each one that could not be made. */
export async function addNetns(names: readonly string[]): Promise<void> {
  await ipIn(
    undefined,
    names.map((n) => `netns add ${n}`),
    'cannot create network namespaces',
  );
}

/** "what: "cmd": why; "cmd": why": every failing line of a batch, with the kernel's answer. */
export function describeFailures(what: string, failures: readonly BatchFailure[]): string {
  return `${what}: ${failures.map((f) => `"${f.command}": ${f.message}`).join('; ')}`;
}

/**
 * Runs `ip -batch` lines inside a namespace (or the caller's when ns is undefined). Every line is
 * attempted; then a WeftError names each line that failed and why.
 */
export async function ipIn(
  ns: string | undefined,
  lines: string[],
  what: string,
  tool: 'ip' | 'bridge' = 'ip',
): Promise<void> {
  const { failures } = await batch(lines, { netns: ns, tool });
  if (failures.length > 0) throw new WeftError(describeFailures(what, failures));
}

/** Sets sysctls inside a namespace in one process; keys this kernel lacks are skipped. */
export async function sysctlIn(ns: string, settings: Record<string, string>): Promise<void> {
  const args = Object.entries(settings).map(([k, v]) => `${k}=${v}`);
  if (args.length === 0) return;
  const r = await runTool('sysctl', ['-q', '-e', '-w', ...args], { netns: ns });
  if (r.code !== 0) throw new WeftError(`cannot set ${args.join(' ')} in ${ns}: ${r.stderr.trim()}`);
}

export async function netnsPids(ns: string): Promise<number[]> {
  const r = await runTool('ip', ['netns', 'pids', ns]);
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** Kills every process inside the namespace (TERM, then KILL after 3 s), then deletes it. */
export async function destroyNetns(ns: string): Promise<void> {
  await killAll(await netnsPids(ns));
  await runTool('ip', ['netns', 'del', ns]);
}

/** Deletes namespaces in one `ip` process (their processes must be gone already); absent ones are fine. */
export async function deleteNetns(names: readonly string[]): Promise<void> {
  await batch(
    names.map((n) => `netns del ${n}`),
    { force: true },
  );
}
