import { run } from '../util/exec.js';

/**
 * iproute2 as the kernel interface: `ip -json` to read, `ip -batch` / `bridge -batch` to write many
 * objects in one process. Every function acts on the calling process's network namespace.
 */

export interface Link {
  ifindex: number;
  ifname: string;
  mtu: number;
  address: string;
  flags: string[];
  operstate: string;
  master?: string;
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
}

export interface AddrInfo {
  family: string;
  local: string;
  prefixlen: number;
  scope?: string;
}

export interface LinkWithAddrs extends Link {
  addr_info: AddrInfo[];
}

export interface RouteEntry {
  dst: string;
  gateway?: string;
  dev?: string;
  flags?: string[];
  protocol?: string;
  scope?: string;
  prefsrc?: string;
}

export interface NeighEntry {
  dst: string;
  lladdr?: string;
  state?: string[];
}

export interface FdbEntry {
  mac: string;
  dst?: string;
  flags?: string[];
  state?: string;
}

async function ipJson<T>(args: string[], cmd = 'ip'): Promise<T[]> {
  const r = await run(cmd, ['-j', ...args]);
  const text = r.stdout.trim();
  return text === '' ? [] : (JSON.parse(text) as T[]);
}

/** `ip -j ARGS` inside a named network namespace: for tools that inspect a lab from outside (read only). */
export const ipJsonIn = <T>(netns: string, args: string[]): Promise<T[]> => ipJson<T>(['-n', netns, ...args]);

export async function getLink(name: string): Promise<Link | undefined> {
  const r = await run('ip', ['-j', '-d', 'link', 'show', 'dev', name], { allowFailure: true });
  if (r.code !== 0) return undefined;
  return (JSON.parse(r.stdout) as Link[])[0];
}

export const listLinks = (): Promise<Link[]> => ipJson<Link>(['-d', 'link', 'show']);

export async function listAddrs(dev?: string): Promise<LinkWithAddrs[]> {
  return ipJson<LinkWithAddrs>(['addr', 'show', ...(dev ? ['dev', dev] : [])]);
}

/** Routes of the main table with the given protocol number (weft's ownership mark). */
export const listRoutesByProto = (proto: number): Promise<RouteEntry[]> =>
  ipJson<RouteEntry>(['route', 'show', 'proto', String(proto)]);

export const listRoutes = (args: string[] = []): Promise<RouteEntry[]> =>
  ipJson<RouteEntry>(['route', 'show', ...args]);

export const listNeighs = (dev: string): Promise<NeighEntry[]> =>
  ipJson<NeighEntry>(['neigh', 'show', 'dev', dev]);

export const listFdb = (dev: string): Promise<FdbEntry[]> =>
  ipJson<FdbEntry>(['fdb', 'show', 'dev', dev], 'bridge');

/** One command of a batch that failed, with the kernel's message. */
export interface BatchFailure {
  line: number;
  command: string;
  message: string;
}

/**
 * Runs commands with `ip -force -batch -` (or `bridge`): every line is attempted, failures are
 * returned per line instead of aborting the rest, so one bad peer cannot block the others.
 */
export async function batch(lines: string[], cmd: 'ip' | 'bridge' = 'ip'): Promise<BatchFailure[]> {
  if (lines.length === 0) return [];
  const r = await run(cmd, ['-force', '-batch', '-'], { input: lines.join('\n') + '\n', allowFailure: true });
  if (r.code === 0) return [];
  // iproute2 prints the error, then "Command failed -:N" for each failing line.
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  for (const l of r.stderr.split('\n')) {
    const m = /^Command failed -:(\d+)/.exec(l);
    if (m) {
      const line = Number(m[1]);
      failures.push({
        line,
        command: lines[line - 1] ?? '',
        message:
          pending
            .join(' ')
            .replace(/^Error: /, '')
            .trim() || 'failed',
      });
      pending = [];
    } else if (l.trim()) pending.push(l.trim());
  }
  if (failures.length === 0)
    failures.push({
      line: 0,
      command: `${cmd} -batch`,
      message: r.stderr.trim() || `exit ${String(r.code)}`,
    });
  return failures;
}

export async function sysctlWrite(key: string, value: string): Promise<void> {
  const { writeFile } = await import('node:fs/promises');
  await writeFile(`/proc/sys/${key.replace(/\./g, '/')}`, value);
}

export async function sysctlRead(key: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  return (await readFile(`/proc/sys/${key.replace(/\./g, '/')}`, 'utf8')).trim();
}
