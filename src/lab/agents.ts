import { spawn } from 'node:child_process';
import { netnsExecArgv } from '../kernel/exec.js';
import { mkdir, open, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { agentGet } from '../agent/client.js';
import { WeftError, describeError } from '../util/errors.js';
import { Journal, labDir } from './journal.js';
import { cmdline } from './netns.js';
import { NEUTRON_CLOUD } from './neutron-underlay.js';
import { findNode, readState, writeState, type LabState, type NodeState } from './state.js';

/**
 * Agents in namespaces: started detached (they outlive the command that started them), watched
 * through a small POSIX-sh supervisor that waits for the agent and records how it ended, waited for
 * until ready, stopped, restarted. Used by the lab and by the benchmarks that need a real agent.
 *
 * Each agent has a directory with: agent.sock (its root-only socket), agent.log (its JSON log),
 * agent.pid (written by the supervisor when it forks the agent), agent.exit ("PID STATUS" once the
 * agent ended: a status above 128 is death by signal STATUS-128, as the shell reports it; the agent
 * itself exits with 0 or 1), agent.restarting (the pid of a `lab agent restart` under way).
 */

const WEFT_JS = fileURLToPath(new URL('../cli/weft.js', import.meta.url));
export const AGENT_METRICS_PORT = 9909;

export function agentFiles(dir: string) {
  return {
    socket: join(dir, 'agent.sock'),
    log: join(dir, 'agent.log'),
    pid: join(dir, 'agent.pid'),
    exit: join(dir, 'agent.exit'),
    restarting: join(dir, 'agent.restarting'),
  };
}

/**
 * The supervisor: $1 is the agent's directory, the rest the command. It forks the command, records
 * its pid, waits for it and records its exit status; files are renamed into place, never half-written.
 */
const SUPERVISOR = [
  'cd "$1" || exit 1',
  'shift',
  // The agent's stderr is the log (fd 3 meanwhile); the shell's own ("Killed") goes nowhere: the log stays JSON.
  'exec 3>&2 2>/dev/null',
  '"$@" 2>&3 3>&- &',
  'pid=$!',
  'exec 3>&-',
  'echo "$pid" > agent.pid.tmp && mv agent.pid.tmp agent.pid',
  'wait "$pid"',
  'echo "$pid $?" > agent.exit.tmp && mv agent.exit.tmp agent.exit',
].join('\n');

export interface AgentLaunch {
  /** Network namespace to run in. */
  netns: string;
  /** The agent's directory (created). */
  dir: string;
  /** Flags after `weft agent`. */
  args: string[];
}

export interface LaunchedAgent {
  /** The agent's own process (`ip netns exec` execs node). */
  pid: number;
  /** The shell that waits for it. */
  supervisorPid: number;
}

/** Starts `weft agent` detached in a namespace, under the supervisor; its output goes to agent.log. */
export async function spawnAgent(a: AgentLaunch): Promise<LaunchedAgent> {
  await mkdir(a.dir, { recursive: true });
  const f = agentFiles(a.dir);
  await Promise.all([rm(f.pid, { force: true }), rm(f.exit, { force: true })]);
  const log = await open(f.log, 'a');
  const command = netnsExecArgv(a.netns, [process.execPath, WEFT_JS, 'agent', ...a.args]);
  const child = spawn('sh', ['-c', SUPERVISOR, 'weft-lab-agent', a.dir, ...command], {
    detached: true,
    stdio: ['ignore', log.fd, log.fd],
  });
  child.on('error', () => undefined); // reported below: no pid
  await log.close();
  child.unref();
  if (child.pid === undefined) throw new WeftError(`cannot start the agent in ${a.netns}: no shell (sh)`);
  const deadline = Date.now() + 10_000;
  for (;;) {
    const pid = Number(await readFile(f.pid, 'utf8').catch(() => ''));
    if (pid > 0) return { pid, supervisorPid: child.pid };
    if (Date.now() > deadline) throw new WeftError(`the agent in ${a.netns} did not start: see ${f.log}`);
    await sleep(10);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The flags of a lab node's agent. */
export function agentArgs(state: LabState, node: NodeState): string[] {
  const f = agentFiles(node.dir);
  return [
    `--etcd-endpoints=${state.etcd.endpoints.join(',')}`,
    '--iface=eth0',
    `--subnet-file=${join(node.dir, 'subnet.env')}`,
    `--status-socket=${f.socket}`,
    `--healthz-addr=0.0.0.0:${AGENT_METRICS_PORT}`,
    `--subnet-lease-ttl=${state.spec.leaseTtl}`,
    `--resync=${state.spec.resync}`,
    ...(state.spec.ipMasq ? ['--ip-masq'] : []),
    ...(state.neutron
      ? [
          `--cloud=${NEUTRON_CLOUD}`,
          `--cloud-config=${state.neutron.cloudsYaml}`,
          `--cluster-name=wl-${state.name}`,
        ]
      : []),
  ];
}

/**
 * Starts a lab node's agent (journaled, so that `lab down` stops it); returns its pid. `extraArgs`
 * follow the lab's flags (a test starting an agent with --take-over-flannel on a Flannel-built node).
 */
export async function startAgent(
  state: LabState,
  node: NodeState,
  j?: Journal,
  extraArgs: string[] = [],
): Promise<number> {
  const a = await spawnAgent({
    netns: node.netns,
    dir: node.dir,
    args: [...agentArgs(state, node), ...extraArgs],
  });
  await j?.record({ kind: 'process', pid: a.supervisorPid, what: `agent ${node.name} supervisor` });
  await j?.record({ kind: 'process', pid: a.pid, what: `agent ${node.name}` });
  return a.pid;
}

/** Whether pid is a live weft agent (not a zombie, not a recycled pid). */
async function isAgent(pid: number): Promise<boolean> {
  return pid > 0 && /weft\.js agent/.test((await cmdline(pid)) ?? '');
}

export interface AgentExit {
  pid: number;
  /** Exit code, when it exited by itself. */
  code: number | null;
  /** Signal name, when a signal ended it. */
  signal: string | null;
  at: string;
}

/** How the agent in `dir` ended last, as its supervisor recorded it. */
export async function agentExit(dir: string): Promise<AgentExit | undefined> {
  const path = agentFiles(dir).exit;
  const text = await readFile(path, 'utf8').catch(() => undefined);
  const m = text === undefined ? null : /^(\d+) (\d+)/.exec(text);
  if (!m) return undefined;
  const status = Number(m[2]);
  const { mtime } = await stat(path);
  const signal =
    status > 128
      ? (Object.entries(constants.signals).find(([, n]) => n === status - 128)?.[0] ??
        `signal ${status - 128}`)
      : null;
  return { pid: Number(m[1]), code: signal ? null : status, signal, at: mtime.toISOString() };
}

export type AgentLiveness =
  | { state: 'running'; pid: number }
  /** A `lab agent restart` is under way. */
  | { state: 'restarting'; pid: number }
  | ({ state: 'exited' } & AgentExit)
  /** Not running, and nothing recorded how it ended (e.g. its supervisor was killed too). */
  | { state: 'unknown'; pid: number };

export async function agentLiveness(node: Pick<NodeState, 'dir' | 'agentPid'>): Promise<AgentLiveness> {
  const f = agentFiles(node.dir);
  const restarter = Number(await readFile(f.restarting, 'utf8').catch(() => ''));
  if (restarter > 0 && (await cmdline(restarter)) !== undefined)
    return { state: 'restarting', pid: node.agentPid };
  if (await isAgent(node.agentPid)) return { state: 'running', pid: node.agentPid };
  const exit = await agentExit(node.dir);
  if (exit) return { state: 'exited', ...exit };
  return { state: 'unknown', pid: node.agentPid };
}

/** One line for a table: "running", "exited: SIGKILL", "exited: code 1", "restarting", "unknown". */
export function describeLiveness(l: AgentLiveness): string {
  if (l.state === 'exited') return `exited: ${l.signal ?? `code ${l.code}`}`;
  return l.state;
}

/** Waits until the agent in `dir` answers /readyz with 200; fails at once, with its last log lines, when it exits. */
export async function waitAgentReady(
  a: { name: string; dir: string; pid: number },
  timeoutMs = 60_000,
): Promise<void> {
  const f = agentFiles(a.dir);
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    const r = await agentGet(f.socket, '/readyz').catch((e: unknown) => ({
      code: 0,
      body: describeError(e),
    }));
    if (r.code === 200) return;
    last = r.body.trim();
    if (a.pid && (await cmdline(a.pid)) === undefined) {
      const exit = await agentExit(a.dir);
      const how = exit ? ` (${exit.signal ?? `code ${exit.code}`})` : '';
      const log = await readFile(f.log, 'utf8').catch(() => '');
      throw new WeftError(
        `the agent on ${a.name} exited${how}: ${log.trim().split('\n').slice(-3).join(' | ')}`,
      );
    }
    await sleep(100);
  }
  throw new WeftError(`the agent on ${a.name} is not ready after ${timeoutMs / 1000} s: ${last}`);
}

export function waitReady(node: NodeState, timeoutMs = 60_000): Promise<void> {
  return waitAgentReady({ name: node.name, dir: node.dir, pid: node.agentPid }, timeoutMs);
}

/**
 * Sends the agent a signal (SIGKILL: a crash; SIGTERM: a clean stop) and waits until it is gone and
 * its supervisor has recorded how it ended (at most 10 s).
 */
export async function stopAgent(
  node: Pick<NodeState, 'dir' | 'agentPid'>,
  signal: NodeJS.Signals,
): Promise<void> {
  const pid = node.agentPid;
  if (!(await isAgent(pid))) return;
  try {
    process.kill(pid, signal);
  } catch {
    /* already gone */
  }
  const deadline = Date.now() + 10_000;
  while ((await cmdline(pid)) !== undefined && Date.now() < deadline) await sleep(50);
  while ((await agentExit(node.dir))?.pid !== pid && Date.now() < deadline) await sleep(20);
}

/** Marks a restart under way (lab status shows it) for the duration of `fn`. */
export async function whileRestarting<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const marker = agentFiles(dir).restarting;
  await writeFile(marker, String(process.pid));
  try {
    return await fn();
  } finally {
    await rm(marker, { force: true });
  }
}

// ------------------------------------------------------------------------------------------- lab commands
/** Ends a lab node's agent with a signal (SIGKILL: a crash; SIGTERM: a clean stop) and records that it is gone. */
export async function labKillAgent(
  name: string,
  nodeName: string,
  signal: NodeJS.Signals = 'SIGKILL',
): Promise<NodeState> {
  const s = await readState(name);
  const node = findNode(s, nodeName);
  await stopAgent(node, signal);
  node.agentPid = 0;
  await writeState(s);
  return node;
}

/** Kills a node's agent (SIGKILL unless told otherwise) and, unless told not to, starts it again and waits until it is ready. */
export async function labRestartAgent(
  name: string,
  nodeName: string,
  opts: { signal?: NodeJS.Signals; start?: boolean } = {},
): Promise<NodeState> {
  if (opts.start === false) return labKillAgent(name, nodeName, opts.signal);
  const s = await readState(name);
  const node = findNode(s, nodeName);
  await whileRestarting(node.dir, async () => {
    await stopAgent(node, opts.signal ?? 'SIGKILL');
    node.agentPid = await startAgent(s, node, new Journal(labDir(name)));
    await writeState(s);
    await waitReady(node);
  });
  return node;
}
