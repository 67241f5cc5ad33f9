import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { batch } from '../kernel/iproute.js';
import { run } from '../util/exec.js';
import { WeftError } from '../util/errors.js';

/** Network-namespace plumbing for labs: batched `ip` commands run from outside or inside a namespace. */

export async function listNetns(): Promise<string[]> {
  const r = await run('ip', ['netns', 'list'], { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(Boolean);
}

/** Runs `ip -batch` inside a namespace (or the caller's when ns is undefined); throws on any failure. */
export async function ipIn(ns: string | undefined, lines: string[], what: string): Promise<void> {
  if (lines.length === 0) return;
  const failures = ns ? await batchIn(ns, lines) : await batch(lines);
  if (failures.length > 0) {
    throw new WeftError(`${what}: ${failures.map((f) => `"${f.command}": ${f.message}`).join('; ')}`);
  }
}

async function batchIn(ns: string, lines: string[]) {
  const r = await run('ip', ['-n', ns, '-force', '-batch', '-'], {
    input: lines.join('\n') + '\n',
    allowFailure: true,
  });
  if (r.code === 0) return [];
  return [{ line: 0, command: `ip -n ${ns} -batch`, message: r.stderr.trim() }];
}

export function execIn(
  ns: string,
  argv: string[],
  opts: { input?: string; allowFailure?: boolean; timeoutMs?: number } = {},
) {
  return run('ip', ['netns', 'exec', ns, ...argv], opts);
}

export async function sysctlIn(ns: string, settings: Record<string, string>): Promise<void> {
  const script = Object.entries(settings)
    .map(
      ([k, v]) =>
        `[ -e /proc/sys/${k.replace(/\./g, '/')} ] && echo ${v} > /proc/sys/${k.replace(/\./g, '/')}`,
    )
    .join('; ');
  await execIn(ns, ['sh', '-c', `${script}; true`]);
}

export async function netnsPids(ns: string): Promise<number[]> {
  const r = await run('ip', ['netns', 'pids', ns], { allowFailure: true });
  return r.stdout.split('\n').filter(Boolean).map(Number);
}

/** Kills every process inside the namespace (TERM, then KILL after 3 s), then deletes it. */
export async function destroyNetns(ns: string): Promise<void> {
  const pids = await netnsPids(ns);
  await killAll(pids);
  await run('ip', ['netns', 'del', ns], { allowFailure: true });
}

export async function killAll(pids: number[], graceMs = 3000): Promise<void> {
  const alive = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
    } catch {
      return false;
    }
  };
  for (const p of pids) {
    try {
      process.kill(p, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const p of pids.filter(alive)) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** The command line of a live process, or undefined when it does not exist or is a zombie. */
export async function cmdline(pid: number): Promise<string | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return undefined; // exited, not yet reaped
    return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ').trim();
  } catch {
    return undefined;
  }
}
