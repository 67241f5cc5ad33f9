import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { run, type RunResult } from '../util/exec.js';
import { KernelError } from './errors.js';

/**
 * The one place that starts the kernel's command-line tools (iproute2, nftables, ethtool, nsenter) and
 * programs inside network namespaces. Asynchronous for the agent, lab and bench; synchronous for the CNI
 * plugin, which does one thing at a time and must not return before the kernel has answered.
 */

export type KernelTool =
  | 'ip'
  | 'bridge'
  | 'nft'
  | 'tc'
  | 'sysctl'
  | 'ethtool'
  | 'nsenter'
  /** Flannel's rules (a node taken over from it): both flavours of iptables, read and removed. */
  | `iptables-${'nft' | 'legacy'}-${'save' | 'restore'}`;

const paths = new Map<string, string>();

/** Whether a system tool is installed (in one of the directories toolPath looks in). */
export const hasTool = (name: KernelTool): boolean => toolPath(name).startsWith('/');

/** Absolute path of a system tool: runtimes often run CNI plugins with a PATH that lacks /usr/sbin. */
export function toolPath(name: string): string {
  let p = paths.get(name);
  if (p === undefined) {
    p = name;
    for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
      if (existsSync(`${dir}/${name}`)) {
        p = `${dir}/${name}`;
        break;
      }
    }
    paths.set(name, p);
  }
  return p;
}

export type ToolResult = RunResult;

export interface ToolOptions {
  input?: string;
  timeoutMs?: number;
  env?: NodeJS.ProcessEnv;
}

/**
 * Where a command runs: the caller's namespace (undefined), a named one (`NAME` or /run/netns/NAME:
 * `ip -n NAME`, one process) or any other namespace file such as /proc/PID/ns/net (through nsenter).
 */
export function argvIn(netns: string | undefined, tool: KernelTool, args: readonly string[]): string[] {
  if (netns === undefined) return [toolPath(tool), ...args];
  const name = netnsName(netns);
  if (name !== undefined && (tool === 'ip' || tool === 'bridge'))
    return [toolPath(tool), '-n', name, ...args];
  const file = name !== undefined ? `/run/netns/${name}` : netns;
  return [toolPath('nsenter'), `--net=${file}`, toolPath(tool), ...args];
}

/** The name of a namespace given as NAME or /run/netns/NAME; undefined for any other path. */
export function netnsName(netns: string): string | undefined {
  if (!netns.includes('/')) return netns;
  return /^(?:\/var)?\/run\/netns\/([^/]+)$/.exec(netns)?.[1];
}

/** Runs a kernel tool and collects its output; never throws for a non-zero exit (the caller decides). */
export async function runTool(
  tool: KernelTool,
  args: readonly string[],
  o: ToolOptions & { netns?: string } = {},
): Promise<ToolResult> {
  const [file, ...rest] = argvIn(o.netns, tool, args);
  return run(file!, rest, { ...o, allowFailure: true });
}

/** The synchronous twin of runTool (CNI plugin); throws KernelError only when the tool cannot start. */
export function runToolSync(
  tool: KernelTool,
  args: readonly string[],
  o: ToolOptions & { netns?: string } = {},
): ToolResult {
  const [file, ...rest] = argvIn(o.netns, tool, args);
  const r = spawnSync(file!, rest, {
    input: o.input ?? '',
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
    env: o.env ?? process.env,
    ...(o.timeoutMs !== undefined && { timeout: o.timeoutMs }),
  });
  if (r.error) {
    const e = r.error as NodeJS.ErrnoException;
    throw new KernelError(
      [file, ...rest].join(' '),
      e.code === 'ENOENT' ? `${tool} is not installed` : e.message,
      e.code === 'ENOENT' ? 'install it (scripts/install.sh does)' : undefined,
    );
  }
  return { code: r.status ?? 1, stdout: r.stdout, stderr: r.stderr };
}

/** Starts a long-lived kernel tool (a monitor) in the caller's namespace, its output piped. */
export function spawnTool(file: string, args: readonly string[]): ChildProcess {
  return spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}

// ------------------------------------------------------------------------------ programs in namespaces

/** `ip netns exec NS …`: runs a program in a named namespace (with its /etc/netns and /sys views). */
export const netnsExecArgv = (ns: string, argv: readonly string[]) => [
  toolPath('ip'),
  'netns',
  'exec',
  netnsName(ns) ?? ns,
  ...argv,
];

/** Runs a program inside a named namespace and collects its output (ping, ss, iperf3, etcdctl …). */
export function execIn(
  ns: string,
  argv: readonly string[],
  o: { input?: string; allowFailure?: boolean; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  const [file, ...rest] = netnsExecArgv(ns, argv);
  return run(file!, rest, o);
}

/** One ICMP echo from a namespace to `ip`, waiting at most 1 s: true when the reply came back. */
export async function pingOnce(ns: string, ip: string): Promise<boolean> {
  return (
    (await execIn(ns, ['ping', '-n', '-q', '-c', '1', '-W', '1', ip], { allowFailure: true })).code === 0
  );
}

/** Runs a program inside a namespace with the terminal attached (`weft lab exec`); returns its exit code. */
export function execInteractive(ns: string, argv: readonly string[]): number {
  const [file, ...rest] = netnsExecArgv(ns, argv);
  return spawnSync(file!, rest, { stdio: 'inherit' }).status ?? 1;
}

export interface SpawnInOptions {
  /** A file descriptor (a log file) or 'pipe' / 'ignore' for stdin, stdout and stderr. */
  stdio?: ('pipe' | 'ignore' | 'inherit' | number)[];
  /** Start it in its own process group and let it outlive this process (daemons: agent, etcd). */
  detached?: boolean;
  env?: NodeJS.ProcessEnv;
}

/**
 * Starts a long-lived program inside a named namespace (an agent, etcd, a measuring server). `ip netns
 * exec` execs the program, so the child's pid is the program's own: it can be signalled and watched.
 * Outside any namespace (ns undefined) the program is started directly.
 */
export function spawnIn(
  ns: string | undefined,
  argv: readonly string[],
  o: SpawnInOptions = {},
): ChildProcess {
  const [file, ...rest] = ns === undefined ? argv : netnsExecArgv(ns, argv);
  return spawn(file!, rest, {
    stdio: o.stdio ?? ['ignore', 'pipe', 'pipe'],
    detached: o.detached ?? false,
    env: o.env ?? process.env,
  });
}
