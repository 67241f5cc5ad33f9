import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

/** Processes by pid: liveness, command line, and a polite-then-firm kill. */

/** Whether a process exists and has not exited (a zombie, exited but not yet reaped, counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return false;
  }
}

/** Sends a signal; false when the process is gone already. */
export function signal(pid: number, s: NodeJS.Signals): boolean {
  try {
    process.kill(pid, s);
    return true;
  } catch {
    return false;
  }
}

/** SIGKILL, then SIGCONT: a stopped (SIGSTOP, hung in a debugger) process dies only once it runs again. */
export function killNow(pid: number): void {
  signal(pid, 'SIGKILL');
  signal(pid, 'SIGCONT');
}

/** Sends TERM to every pid, then KILL to those still alive after `graceMs`. */
export async function killAll(pids: number[], graceMs = 3000): Promise<void> {
  for (const p of pids) signal(p, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const p of pids.filter(alive)) signal(p, 'SIGKILL');
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
