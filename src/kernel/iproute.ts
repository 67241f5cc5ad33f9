import { readFileSync } from 'node:fs';
import { batch as runBatch, type BatchFailure } from './batch.js';
import { KernelError, isNotFound } from './errors.js';
import { argvIn, runTool, runToolSync, type ToolResult } from './exec.js';
import type { BatchTool } from './ops.js';
import type { FdbEntry, Link, LinkWithAddrs, NeighEntry, RouteEntry } from './types.js';

/**
 * iproute2 as the kernel interface for reading: `ip -j` / `bridge -j` queries, each with an
 * asynchronous front end (agent, lab, bench) and a synchronous one (CNI plugin), and the same parser
 * behind both. Changes go through kernel.ts (Ops: netlink or iproute2) or batch.ts (raw batch lines).
 */

export type { FdbEntry, Link, LinkWithAddrs, NeighEntry, RouteEntry, AddrInfo } from './types.js';
export type { BatchFailure } from './batch.js';
export { sysctlRead, sysctlWrite } from './sysctl.js';

/** A query: the command, and how its output becomes a value (undefined for "no such object"). */
export interface Query<T> {
  tool: BatchTool;
  args: string[];
  parse(r: ToolResult, command: string): T;
}

function json<T>(r: ToolResult, command: string): T[] {
  if (r.code !== 0) throw new KernelError(command, r.stderr.trim() || `exit ${String(r.code)}`);
  const text = r.stdout.trim();
  try {
    return text === '' ? [] : (JSON.parse(text) as T[]);
  } catch {
    throw new KernelError(command, 'printed output that is not JSON');
  }
}

/** A list; an error when the command fails. */
const list = <T>(tool: BatchTool, args: string[]): Query<T[]> => ({
  tool,
  args: ['-j', ...args],
  parse: json<T>,
});

/** A list of one device's objects: empty when the device does not exist. */
const listOfDevice = <T>(tool: BatchTool, args: string[]): Query<T[]> => ({
  tool,
  args: ['-j', ...args],
  parse: (r, c) => (r.code !== 0 && isNotFound(r.stderr) ? [] : json<T>(r, c)),
});

/** One object: undefined when it does not exist. */
const one = <T>(tool: BatchTool, args: string[]): Query<T | undefined> => ({
  tool,
  args: ['-j', ...args],
  parse: (r, c) => (r.code !== 0 && isNotFound(r.stderr) ? undefined : json<T>(r, c)[0]),
});

export const Q = {
  /** A device with details (kind and its parameters); undefined when absent. */
  link: (name: string) => one<Link>('ip', ['-d', 'link', 'show', 'dev', name]),
  links: () => list<Link>('ip', ['-d', 'link', 'show']),
  /** The devices enslaved to a bridge; empty when the bridge does not exist. */
  linksOf: (master: string) => listOfDevice<Link>('ip', ['link', 'show', 'master', master]),
  /** A device with its addresses (and details); undefined when absent. */
  linkAddrs: (name: string) => one<LinkWithAddrs>('ip', ['-d', 'addr', 'show', 'dev', name]),
  addrs: (dev?: string) => list<LinkWithAddrs>('ip', ['addr', 'show', ...(dev ? ['dev', dev] : [])]),
  routes: (args: string[] = []) => list<RouteEntry>('ip', ['route', 'show', ...args]),
  neighs: (dev: string) => listOfDevice<NeighEntry>('ip', ['neigh', 'show', 'dev', dev]),
  fdb: (dev: string) => listOfDevice<FdbEntry>('bridge', ['fdb', 'show', 'dev', dev]),
};

export async function query<T>(q: Query<T>, netns?: string): Promise<T> {
  const r = await runTool(q.tool, q.args, { netns });
  return q.parse(r, argvIn(netns, q.tool, q.args).join(' '));
}

export function querySync<T>(q: Query<T>, netns?: string): T {
  const r = runToolSync(q.tool, q.args, { netns });
  return q.parse(r, argvIn(netns, q.tool, q.args).join(' '));
}

// ------------------------------------------------------------------- the agent's names for them

export const getLink = (name: string): Promise<Link | undefined> => query(Q.link(name));
export const listLinks = (): Promise<Link[]> => query(Q.links());
export const listAddrs = (dev?: string): Promise<LinkWithAddrs[]> => query(Q.addrs(dev));
export const listRoutes = (args: string[] = []): Promise<RouteEntry[]> => query(Q.routes(args));
/** Routes of the main table with the given protocol number (weft's ownership mark). */
export const listRoutesByProto = (proto: number): Promise<RouteEntry[]> =>
  query(Q.routes(['proto', String(proto)]));
export const listNeighs = (dev: string): Promise<NeighEntry[]> => query(Q.neighs(dev));
export const listFdb = (dev: string): Promise<FdbEntry[]> => query(Q.fdb(dev));

/** `ip -j ARGS` inside a named network namespace: for tools that inspect a lab from outside (read only). */
export const ipJsonIn = <T>(netns: string, args: string[]): Promise<T[]> => query(list<T>('ip', args), netns);

/** Raw batch lines in the caller's namespace (every line attempted); the failures, per line. */
export async function batch(lines: string[], tool: BatchTool = 'ip'): Promise<BatchFailure[]> {
  return (await runBatch(lines, { tool })).failures;
}

/**
 * Names of the network interfaces in the calling process's namespace, without starting anything:
 * /proc/self/net/dev always describes the namespace of the reading process.
 */
export function localLinkNames(): Set<string> {
  const names = new Set<string>();
  let text = '';
  try {
    text = readFileSync('/proc/self/net/dev', 'utf8');
  } catch {
    return names;
  }
  for (const line of text.split('\n').slice(2)) {
    const i = line.indexOf(':');
    if (i > 0) names.add(line.slice(0, i).trim());
  }
  return names;
}
