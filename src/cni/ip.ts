/**
 * Kernel operations for the CNI plugin, through iproute2. Commands are batched (`ip -batch -`) so that an
 * ADD costs three short-lived `ip` processes; everything is synchronous because the plugin is a
 * short-lived process that does one thing at a time. Nothing here touches any namespace other than the
 * one the plugin runs in (the node's) and the pod's, named by its path.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { CniError, ERR } from './errors.js';

const tracing = process.env.WEFT_CNI_TRACE === '1';

/** WEFT_CNI_TRACE=1: prints each phase's time since process start to stderr (for the benchmark). */
export function trace(label: string): void {
  if (tracing) process.stderr.write(`weft-cni trace ${label} ${performance.now().toFixed(2)}\n`);
}

const toolCache = new Map<string, string>();

/** Absolute path of a system tool; runtimes often run plugins with a PATH that lacks /usr/sbin. */
export function tool(name: string): string {
  let p = toolCache.get(name);
  if (p === undefined) {
    p = name;
    for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      if (existsSync(`${dir}/${name}`)) {
        p = `${dir}/${name}`;
        break;
      }
    }
    toolCache.set(name, p);
  }
  return p;
}

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function exec(file: string, args: string[], input = ''): ExecResult {
  const r = spawnSync(tool(file), args, { input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  trace(`${file} ${args[0] ?? ''}`);
  if (r.error) {
    const e = r.error as NodeJS.ErrnoException;
    throw new CniError(
      ERR.KERNEL,
      `cannot run ${file}: ${e.code === 'ENOENT' ? 'not installed' : e.message}`,
    );
  }
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/**
 * Runs `ip ARGS` inside a network namespace given by path: a /run/netns/NAME bind mount is entered by
 * `ip -n NAME` (one process); any other path (/proc/PID/ns/net) through `nsenter --net=PATH ip`.
 */
function inNetns(path: string, ipArgs: string[], input = ''): ExecResult {
  const m = /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(path);
  if (m) return exec('ip', ['-n', m[1]!, ...ipArgs], input);
  return exec('nsenter', [`--net=${path}`, tool('ip'), ...ipArgs], input);
}

export interface BatchOptions {
  /** Path of a network namespace to run in (/run/netns/X or /proc/PID/ns/net); default: the current one. */
  netns?: string;
  /** Pass -json (only commands that print, like `addr show`, produce output). */
  json?: boolean;
  /** Continue after a failing line (-force); the result's `failed` lists the 1-based line numbers. */
  force?: boolean;
}

export interface BatchResult extends ExecResult {
  /** 1-based numbers of the lines that failed. */
  failed: number[];
}

/** Runs `ip -batch -` with the given lines, in the current or the given network namespace. */
export function ipBatch(lines: string[], opts: BatchOptions = {}): BatchResult {
  const ipArgs = [...(opts.json ? ['-json'] : []), ...(opts.force ? ['-force'] : []), '-batch', '-'];
  const input = lines.join('\n') + '\n';
  const r = opts.netns ? inNetns(opts.netns, ipArgs, input) : exec('ip', ipArgs, input);
  const failed: number[] = [];
  for (const m of r.stderr.matchAll(/Command failed -:(\d+)/g)) failed.push(Number(m[1]));
  return { ...r, failed };
}

/** Like ipBatch, but throws a CniError naming the failing command and the kernel's answer. */
export function ipBatchOrThrow(lines: string[], opts: BatchOptions = {}, what = 'ip'): BatchResult {
  const r = ipBatch(lines, opts);
  if (r.code !== 0) {
    const line = r.failed[0] !== undefined ? lines[r.failed[0] - 1] : undefined;
    const answer = r.stderr
      .split('\n')
      .filter((l) => l.trim() !== '' && !/^Command failed/.test(l))
      .join('; ');
    const where = opts.netns ? ` in ${opts.netns}` : '';
    throw new CniError(
      ERR.KERNEL,
      `${what}: "ip ${line ?? lines.join('; ')}"${where} failed: ${answer || `exit ${r.code}`}`,
    );
  }
  return r;
}

/** One `ip -json` command; undefined when it fails (e.g. the device does not exist). */
export function ipJson<T>(args: string[], netns?: string): T | undefined {
  const r = netns ? inNetns(netns, ['-json', ...args]) : exec('ip', ['-json', ...args]);
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout || '[]') as T;
  } catch {
    return undefined;
  }
}

/**
 * Names of the network interfaces in the current network namespace, without spawning anything:
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

export interface IpAddrInfo {
  family: string;
  local: string;
  prefixlen: number;
}
export interface IpLink {
  ifindex: number;
  ifname: string;
  flags?: string[];
  mtu?: number;
  address?: string;
  master?: string;
  operstate?: string;
  linkinfo?: { info_kind?: string; info_slave_kind?: string; info_slave_data?: { hairpin?: boolean } };
  addr_info?: IpAddrInfo[];
}
export interface IpRoute {
  dst: string;
  gateway?: string;
  dev?: string;
}

/** Sets a per-namespace sysctl (/proc/sys/net/* follows the reading process's namespace). */
export function ensureSysctl(path: string, value: string): void {
  let cur = '';
  try {
    cur = readFileSync(path, 'utf8').trim();
  } catch {
    return;
  }
  if (cur !== value) writeFileSync(path, value);
}
