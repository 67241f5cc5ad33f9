import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { spawnTool, toolPath } from './exec.js';

/**
 * Kernel change events of the caller's namespace, so that a reconciler re-reads the kernel only when
 * something it owns may have changed instead of polling. Two long-lived processes listen (idle, they
 * cost nothing): `ip -4 -o monitor label link address route neigh` and `bridge -o monitor fdb`; their
 * lines are parsed into KernelEvents. A line that says events were lost (the kernel's buffer overflowed
 * in a burst) or a monitor that exits is reported as `lost`: the reader must then re-read everything.
 * A netlink subscription could replace the processes behind the same interface.
 */

export type KernelEvent =
  | {
      kind: 'route';
      deleted: boolean;
      dst: string;
      gateway?: string;
      dev?: string;
      protocol?: string;
      table?: string;
      type?: string;
      onlink: boolean;
    }
  | { kind: 'neigh'; deleted: boolean; dst: string; dev?: string; lladdr?: string; state: string[] }
  | { kind: 'fdb'; deleted: boolean; mac: string; dev?: string; dst?: string; state?: string }
  | { kind: 'link'; deleted: boolean; ifname: string }
  | { kind: 'addr'; deleted: boolean; dev: string }
  | { kind: 'lost'; why: string };

const ROUTE_TYPES = new Set([
  'unicast',
  'local',
  'broadcast',
  'multicast',
  'anycast',
  'unreachable',
  'blackhole',
  'prohibit',
  'throw',
  'nat',
]);

/** The value after each keyword of a line ("dev weft.1 proto 87" → {dev: "weft.1", proto: "87"}). */
function pairs(tokens: string[], keys: readonly string[]): Map<string, string> {
  const m = new Map<string, string>();
  for (let i = 0; i < tokens.length - 1; i++)
    if (keys.includes(tokens[i]!)) m.set(tokens[i]!, tokens[i + 1]!);
  return m;
}

function parseRoute(deleted: boolean, tokens: string[]): KernelEvent | undefined {
  let type: string | undefined;
  if (ROUTE_TYPES.has(tokens[0]!)) type = tokens.shift();
  const dst = tokens.shift();
  if (!dst || !/^(default|\d+\.\d+\.\d+\.\d+(\/\d+)?)$/.test(dst)) return undefined;
  const p = pairs(tokens, ['via', 'dev', 'table', 'proto', 'scope', 'src', 'metric']);
  return {
    kind: 'route',
    deleted,
    dst,
    ...(p.has('via') && { gateway: p.get('via') }),
    ...(p.has('dev') && { dev: p.get('dev') }),
    ...(p.has('proto') && { protocol: p.get('proto') }),
    ...(p.has('table') && { table: p.get('table') }),
    ...(type !== undefined && { type }),
    onlink: tokens.includes('onlink'),
  };
}

function parseNeigh(deleted: boolean, tokens: string[]): KernelEvent | undefined {
  const dst = tokens[0];
  if (!dst || !/^\d+\.\d+\.\d+\.\d+$/.test(dst)) return undefined;
  const p = pairs(tokens, ['dev', 'lladdr']);
  return {
    kind: 'neigh',
    deleted,
    dst,
    ...(p.has('dev') && { dev: p.get('dev') }),
    ...(p.has('lladdr') && { lladdr: p.get('lladdr')!.toLowerCase() }),
    state: tokens.filter((t) => /^[A-Z_]+$/.test(t)),
  };
}

/** What the monitors print when the kernel dropped events for them (a burst overflowed their buffer). */
const LOST = /No buffer space|receive error|overrun|interrupted/i;

/**
 * One line of either monitor as an event; undefined for lines that are of no interest (IPv6, a
 * neighbour "miss"); `lost` for the monitors' error lines.
 */
export function parseMonitorLine(line: string, source: 'ip' | 'bridge'): KernelEvent | undefined {
  const text = line.trim();
  if (text === '') return undefined;
  const lost = LOST.test(text) ? { kind: 'lost' as const, why: text } : undefined;
  if (source === 'bridge') {
    const m = /^(Deleted )?([0-9a-f]{2}(?::[0-9a-f]{2}){5}) (.*)$/i.exec(text);
    if (!m) return lost;
    const tokens = m[3]!.split(/\s+/);
    const p = pairs(tokens, ['dev', 'dst']);
    const state = tokens.find((t) => t === 'permanent' || t === 'static' || t === 'stale');
    return {
      kind: 'fdb',
      deleted: m[1] !== undefined,
      mac: m[2]!.toLowerCase(),
      ...(p.has('dev') && { dev: p.get('dev') }),
      ...(p.has('dst') && { dst: p.get('dst') }),
      ...(state !== undefined && { state }),
    };
  }
  const m = /^\[(LINK|ADDR|ROUTE|NEIGH)\](Deleted )?(.*)$/.exec(text);
  if (!m) return lost;
  const deleted = m[2] !== undefined;
  const rest = m[3]!;
  switch (m[1]) {
    case 'LINK': {
      const l = /^\d+: ([^:@\s]+)(?:@\S+)?:/.exec(rest);
      return l ? { kind: 'link', deleted, ifname: l[1]! } : undefined;
    }
    case 'ADDR': {
      const a = /^\d+: (\S+)\s+inet\s/.exec(rest);
      return a ? { kind: 'addr', deleted, dev: a[1]! } : undefined;
    }
    case 'ROUTE':
      return parseRoute(deleted, rest.split(/\s+/));
    default:
      return parseNeigh(deleted, rest.split(/\s+/));
  }
}

export interface Watch {
  stop(): void;
}

/** When the monitors die with their parent (a killed agent leaves none behind): setpriv's pdeathsig. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/**
 * Follows the caller's namespace: `onEvent` for every event, `lost` included (then also when a monitor
 * exits unexpectedly). The processes die with this one.
 */
export function watchKernel(onEvent: (e: KernelEvent) => void): Watch {
  const children: ChildProcess[] = [];
  let stopped = false;
  const start = (source: 'ip' | 'bridge', args: string[]) => {
    const child = SETPRIV
      ? spawnTool(SETPRIV, ['--pdeathsig', 'KILL', '--', toolPath(source), ...args])
      : spawnTool(toolPath(source), args);
    children.push(child);
    child.on('error', (e) => !stopped && onEvent({ kind: 'lost', why: `${source} monitor: ${e.message}` }));
    child.on('exit', (code, signal) => {
      if (!stopped) onEvent({ kind: 'lost', why: `${source} monitor exited (${signal ?? String(code)})` });
    });
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (l) => {
      const e = parseMonitorLine(l, source);
      if (e && !stopped) onEvent(e);
    });
    // Other complaints (e.g. "Peer netns reference is invalid" while printing a pod's veth) lose nothing.
    createInterface({ input: child.stderr! }).on('line', (l) => {
      if (!stopped && LOST.test(l)) onEvent({ kind: 'lost', why: `${source} monitor: ${l.trim()}` });
    });
    // The monitors must not keep a process alive that has nothing else to do.
    child.unref();
    (child.stdout as unknown as { unref?: () => void }).unref?.();
    (child.stderr as unknown as { unref?: () => void }).unref?.();
  };
  start('ip', ['-4', '-o', 'monitor', 'label', 'link', 'address', 'route', 'neigh']);
  start('bridge', ['-o', 'monitor', 'fdb']);
  const stop = () => {
    stopped = true;
    for (const c of children) c.kill('SIGKILL');
    process.off('exit', stop);
  };
  process.on('exit', stop);
  return { stop };
}
