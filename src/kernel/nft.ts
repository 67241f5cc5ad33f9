import { KernelError } from './errors.js';
import { runTool, runToolSync } from './exec.js';
import { nftCounterNetlink } from './netlink.js';

/**
 * nftables through `nft`: scripts applied as one transaction (`nft -f -`: all or nothing), JSON
 * listings, and deletion of a table that may be absent.
 */

function check(r: { code: number | null; stderr: string }, what: string): void {
  if (r.code !== 0) throw new KernelError(what, r.stderr.trim() || `exit ${String(r.code)}`);
}

/** Applies an nft script atomically; throws KernelError with nft's answer. */
export async function nftApply(script: string, o: { netns?: string } = {}): Promise<void> {
  check(await runTool('nft', ['-f', '-'], { input: script, netns: o.netns }), 'nft -f -');
}

export function nftApplySync(script: string, o: { netns?: string } = {}): void {
  check(runToolSync('nft', ['-f', '-'], { input: script, netns: o.netns }), 'nft -f -');
}

/** `nft -j list …`; undefined when the object does not exist. */
export async function nftList<T>(args: string[], o: { netns?: string } = {}): Promise<T | undefined> {
  const r = await runTool('nft', ['-j', 'list', ...args], { netns: o.netns });
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as T;
  } catch {
    throw new KernelError(`nft -j list ${args.join(' ')}`, 'printed output that is not JSON');
  }
}

/** Deletes a table; one that does not exist is not an error. */
export async function nftDeleteTable(
  family: string,
  name: string,
  o: { netns?: string } = {},
): Promise<void> {
  await runTool('nft', ['delete', 'table', family, name], { netns: o.netns });
}

interface CounterJson {
  nftables: { counter?: { packets: number; bytes: number } }[];
}

/**
 * A named counter object of a table: over netlink when available (no process: it is read every few
 * seconds for /metrics), else `nft -j list counter`. Undefined when it does not exist.
 */
export async function nftCounter(
  family: string,
  table: string,
  name: string,
): Promise<{ packets: number; bytes: number } | undefined> {
  const fast = nftCounterNetlink(family, table, name);
  if (fast !== null) return fast;
  const j = await nftList<CounterJson>(['counter', family, table, name]);
  return j?.nftables.find((x) => x.counter)?.counter;
}
