import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import type { Registry } from 'prom-client';
import { describeError, WeftError } from '../util/errors.js';
import { alive, killNow, signal } from '../util/process.js';
import type { Cidr } from '../util/ipv4.js';
import type { Logger } from '../util/log.js';
import { ControlConnection, controlSocketName } from './control.js';
import {
  findHelperPids,
  HELPER_PATH,
  helperArgs,
  isOutdated,
  parseReply,
  sameSettings,
  type HelperConfig,
  type HelperSettings,
  type HelperStats,
} from './helper.js';
import { registerUdpMetrics } from './metrics.js';

/**
 * Supervises weft-udp, the udp backend's native data path. The process runs detached from the agent:
 * when the agent is killed it keeps moving packets, and the next agent adopts it (same settings) or
 * replaces it (other settings). While the agent runs it holds a control connection; when that closes
 * the data path has died, and it is restarted at once, then with backoff (0.25 s doubling to 10 s).
 * A data path that stops answering is reported at once and killed after 5 s. Every restart is logged
 * with its cause and counted, and readiness says why the data path is down while it is.
 */

const RESTART_DELAYS_MS = [0, 250, 500, 1000, 2000, 5000, 10_000];
const HEALTH_EVERY_MS = 1000;
const SILENT_REPORT_MS = 2000;
const SILENT_KILL_MS = 5000;
const STABLE_MS = 30_000;
const START_TIMEOUT_MS = 5000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export type DataPathState = 'starting' | 'up' | 'down' | 'stopped';

export interface UdpDataPathOptions {
  settings: HelperSettings;
  /** weft-udp's own log (start, peer table sizes, path MTU changes, exit). */
  logFile: string;
  log: Logger;
  registry: Registry;
  helperPath?: string;
  /** Run before every start: makes sure what weft-udp attaches to (the TUN device) is there. */
  beforeStart?: () => Promise<void>;
}

export interface UdpDataPathStatus {
  kind: 'udp';
  state: DataPathState;
  reason?: string;
  pid?: number;
  adopted: boolean;
  mode: 'gso' | 'batch1';
  workers: number;
  restarts: number;
  lastExit?: { at: string; reason: string };
  log: string;
  counters?: Pick<HelperStats, 'tx' | 'rx' | 'icmp' | 'peers'> & { drops: Record<string, number> };
}

export class UdpDataPath {
  private readonly bin: string;
  private readonly log: Logger;
  private conn: ControlConnection | undefined;
  private child: ChildProcess | undefined;
  private childExit: string | undefined;
  /** Why the agent itself killed the data path (it stopped answering), if it did. */
  private killedFor: string | undefined;
  private pid: number | undefined;
  private adopted = false;
  private state: DataPathState = 'stopped';
  private reason: string | undefined;
  private restartCount = 0;
  private attempt = 0;
  private upSince = 0;
  private lastExit: { at: string; reason: string } | undefined;
  private desired: string | undefined;
  private applied: string | undefined;
  private lastStats: HelperStats | undefined;
  private statsRequest: Promise<HelperStats | undefined> | undefined;
  private silentSince: number | undefined;
  private healthInFlight = false;
  private timer: NodeJS.Timeout | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  constructor(private readonly o: UdpDataPathOptions) {
    this.bin = o.helperPath ?? HELPER_PATH;
    this.log = o.log;
    registerUdpMetrics(o.registry, {
      up: () => this.state === 'up' && this.silentSince === undefined,
      restarts: () => this.restartCount,
      stats: () => this.freshStats(),
    });
  }

  private get name(): string {
    return controlSocketName(this.o.settings.tun);
  }

  /** Adopts or starts the data path; a failure to start is reported (readiness) and retried, not thrown. */
  async start(): Promise<void> {
    if (!existsSync(this.bin))
      throw new WeftError(`the udp data path is not built (${this.bin} is missing)`, {
        hint: 'install gcc and run `npm run build` (scripts/install.sh does both)',
      });
    this.stopping = false;
    await this.bringUp();
    this.timer = setInterval(() => void this.healthCheck(), HEALTH_EVERY_MS);
  }

  /** The peer table (this node's subnet, and every udp peer's subnet → public IP), swapped whole. */
  async setPeers(own: Cidr, peers: { subnet: Cidr; ip: string }[]): Promise<void> {
    const entries = peers.map((p) => `${p.subnet.toString()}=${p.ip}`);
    this.desired = ['peers', `own=${own.toString()}`, ...entries].join(' ');
    // An unchanged table is not sent again (weft-udp would rebuild its tables for nothing); a new
    // process gets it from bringUp, which forgets what was applied.
    if (this.state === 'up' && this.desired !== this.applied) await this.pushPeers();
  }

  readiness(): string[] {
    const st = this.state;
    if (st === 'up' && this.silentSince !== undefined && Date.now() - this.silentSince >= SILENT_REPORT_MS)
      return [
        `udp data path (pid ${this.pid}) has not answered for ${Math.round((Date.now() - this.silentSince) / 1000)} s`,
      ];
    if (st === 'starting') return ['udp data path is starting'];
    if (st === 'down')
      return [
        `udp data path is down: ${this.reason ?? 'unknown'}; restarting it (${this.restartCount} restarts so far)`,
      ];
    return [];
  }

  status(): UdpDataPathStatus {
    const s = this.lastStats;
    return {
      kind: 'udp',
      state: this.state,
      ...(this.reason !== undefined && { reason: this.reason }),
      ...(this.pid !== undefined && { pid: this.pid }),
      adopted: this.adopted,
      mode: this.o.settings.batch === 1 ? 'batch1' : 'gso',
      workers: this.o.settings.batch === 1 ? 1 : this.o.settings.workers,
      restarts: this.restartCount,
      ...(this.lastExit && { lastExit: this.lastExit }),
      log: this.o.logFile,
      ...(s && {
        counters: {
          peers: s.peers,
          tx: s.tx,
          rx: s.rx,
          icmp: s.icmp,
          drops: Object.fromEntries(
            Object.entries(s.drops)
              .filter(([, d]) => d.packets > 0)
              .map(([k, d]) => [k, d.packets]),
          ),
        },
      }),
    };
  }

  /** The counters as they are now (one request however many callers ask at once). */
  freshStats(): Promise<HelperStats | undefined> {
    const conn = this.conn;
    if (this.state !== 'up' || !conn) return Promise.resolve(this.lastStats);
    this.statsRequest ??= conn
      .request('stats', 1000)
      .then((line) => this.noteStats(parseReply<HelperStats>(line, 'stats')))
      .catch(() => this.lastStats)
      .finally(() => (this.statsRequest = undefined));
    return this.statsRequest;
  }

  private noteStats(s: HelperStats): HelperStats {
    this.lastStats = s;
    return s;
  }

  /**
   * The agent is stopping: the data path goes on without it (the next agent adopts it). When the node
   * leaves, stopHelper then ends the process, which is no longer restarted.
   */
  detach(): void {
    this.stopping = true;
    clearInterval(this.timer);
    clearTimeout(this.restartTimer);
    this.conn?.close();
    this.child?.unref();
  }

  // ------------------------------------------------------------------------------ process

  private async bringUp(): Promise<void> {
    this.state = 'starting';
    try {
      if (!(await this.tryAdopt())) {
        await this.o.beforeStart?.();
        await this.spawnHelper();
      }
      this.applied = undefined;
      while (this.desired !== undefined && this.applied !== this.desired) await this.pushPeers();
      this.state = 'up';
      this.reason = undefined;
      this.upSince = Date.now();
      this.silentSince = undefined;
      await this.healthCheck();
    } catch (e) {
      if (this.stopping) return;
      this.state = 'down';
      this.reason = describeError(e);
      this.log.error(`cannot start the udp data path: ${this.reason}`);
      this.conn?.close();
      this.scheduleRestart();
    }
  }

  /** Takes over a data path already running in this namespace (an earlier agent's), if it fits. */
  private async tryAdopt(): Promise<boolean> {
    let conn: ControlConnection;
    try {
      conn = await ControlConnection.open(this.name);
    } catch {
      return false; // nobody listens: nothing to adopt
    }
    let running: HelperConfig;
    try {
      running = parseReply<HelperConfig>(await conn.request('config'), 'config');
    } catch (e) {
      conn.close();
      this.log.warn(
        `a udp data path holds @${this.name} but does not answer (${describeError(e)}): killing it`,
      );
      await killHelpers(this.o.settings.tun);
      return false;
    }
    const outdated = isOutdated(running.pid);
    if (outdated || !sameSettings(running, this.o.settings)) {
      this.log.info(
        { running: { ...running }, want: this.o.settings },
        outdated
          ? 'the running udp data path is an older build: replacing it'
          : 'the running udp data path has other settings: replacing it',
      );
      await conn.request('quit').catch(() => undefined);
      conn.close();
      await waitGone([running.pid], 3000);
      return false;
    }
    this.attach(conn, running.pid, undefined);
    this.log.info(
      { helperPid: running.pid },
      'adopted the running udp data path (started by an earlier agent)',
    );
    return true;
  }

  private async spawnHelper(): Promise<void> {
    const out = openSync(this.o.logFile, 'a');
    const args = helperArgs(this.o.settings);
    const child = spawn(this.bin, args, { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    let exited: string | undefined;
    child.once('error', (e) => (exited = e.message));
    child.once('exit', (code, signal) => {
      exited = signal ? `killed by ${signal}` : `exited with status ${String(code)}`;
      this.childExit = exited;
    });
    this.childExit = undefined;
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (Date.now() < deadline) {
      if (exited !== undefined) throw new WeftError(`weft-udp ${exited}: ${this.lastLogLine()}`);
      const conn = await ControlConnection.open(this.name, 500).catch(() => undefined);
      if (conn) {
        const running = parseReply<HelperConfig>(await conn.request('config'), 'config');
        this.attach(conn, running.pid, child);
        this.log.info({ helperPid: running.pid, args }, 'started the udp data path');
        return;
      }
      await sleep(25);
    }
    child.kill('SIGKILL');
    throw new WeftError(`weft-udp did not open its control socket within ${START_TIMEOUT_MS / 1000} s`);
  }

  private attach(conn: ControlConnection, pid: number, child: ChildProcess | undefined): void {
    this.conn = conn;
    this.pid = pid;
    this.child = child;
    this.adopted = child === undefined;
    this.killedFor = undefined;
    conn.onClosed(() => void this.onLost(conn));
  }

  /** The control connection closed: the data path exited or crashed. Say why, restart it. */
  private async onLost(conn: ControlConnection): Promise<void> {
    if (conn !== this.conn || this.stopping) return;
    this.conn = undefined;
    const pid = this.pid;
    await sleep(100); // the child's exit status follows the socket's close
    let why = this.killedFor ?? (this.child ? this.childExit : undefined);
    if (why === undefined) {
      if (pid !== undefined && alive(pid)) {
        why = 'closed its control socket';
        await killHelpers(this.o.settings.tun);
      } else why = 'exited (it was started by an earlier agent: its status is unknown)';
    }
    const last = this.lastLogLine();
    const reason = `weft-udp (pid ${pid}) ${why}${last ? `; its log: ${last}` : ''}`;
    this.lastExit = { at: new Date().toISOString(), reason };
    this.restartCount++;
    this.state = 'down';
    this.reason = reason;
    this.lastStats = undefined;
    this.log.error(`udp data path lost: ${reason}; restarting it`);
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    if (this.stopping || this.restartTimer) return;
    const delay = RESTART_DELAYS_MS[Math.min(this.attempt, RESTART_DELAYS_MS.length - 1)]!;
    this.attempt++;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (!this.stopping) void this.bringUp();
    }, delay);
  }

  private async pushPeers(): Promise<void> {
    const line = this.desired;
    const conn = this.conn;
    if (line === undefined || !conn) return;
    const reply = await conn.request(line, 5000);
    if (!reply.startsWith('ok')) throw new WeftError(`weft-udp refused the peer table: ${reply}`);
    this.applied = line;
  }

  private async healthCheck(): Promise<void> {
    const conn = this.conn;
    if (this.state !== 'up' || !conn || this.healthInFlight) {
      if (this.silentSince !== undefined && this.pid !== undefined) this.maybeKillSilent(this.pid);
      return;
    }
    this.healthInFlight = true;
    try {
      this.noteStats(parseReply<HelperStats>(await conn.request('stats', SILENT_REPORT_MS), 'stats'));
      if (this.silentSince !== undefined) this.log.info('the udp data path answers again');
      this.silentSince = undefined;
      if (Date.now() - this.upSince > STABLE_MS) this.attempt = 0;
    } catch (e) {
      if (conn.closed) return; // onLost handles it
      if (this.silentSince === undefined) {
        this.silentSince = Date.now() - SILENT_REPORT_MS;
        this.log.warn(`the udp data path (pid ${this.pid}) does not answer: ${describeError(e)}`);
      }
      if (this.pid !== undefined) this.maybeKillSilent(this.pid);
    } finally {
      this.healthInFlight = false;
    }
  }

  private maybeKillSilent(pid: number): void {
    if (Date.now() - this.silentSince! < SILENT_KILL_MS) return;
    this.log.error(
      `the udp data path (pid ${pid}) has not answered for ${SILENT_KILL_MS / 1000} s: killing it`,
    );
    this.killedFor = `stopped answering for ${SILENT_KILL_MS / 1000} s and was killed`;
    killNow(pid);
  }

  private lastLogLine(): string {
    try {
      // Its last words, but for the closing "stopped" that follows every exit it chose.
      const lines = readFileSync(this.o.logFile, 'utf8')
        .trimEnd()
        .split('\n')
        .map((l) => l.replace(/^\S+ weft-udp\[\d+\]: /, ''))
        .filter((l) => l !== 'stopped');
      return lines[lines.length - 1] ?? '';
    } catch {
      return '';
    }
  }
}

async function waitGone(pids: number[], ms: number): Promise<void> {
  const deadline = Date.now() + ms;
  while (pids.some(alive) && Date.now() < deadline) await sleep(20);
  for (const p of pids.filter(alive)) signal(p, 'SIGKILL');
  while (pids.some(alive) && Date.now() < deadline + 2000) await sleep(20);
}

async function killHelpers(tun: string): Promise<void> {
  const pids = findHelperPids(tun);
  for (const p of pids) killNow(p);
  await waitGone(pids, 2000);
}

/**
 * Stops any weft-udp serving `tun` in this network namespace (asked to quit, killed if it does not):
 * for a backend other than udp, which must not leave the old data path running. Returns whether one ran.
 */
export async function stopHelper(tun: string, log: Logger): Promise<boolean> {
  const conn = await ControlConnection.open(controlSocketName(tun)).catch(() => undefined);
  const pids = findHelperPids(tun);
  if (!conn && pids.length === 0) return false;
  if (conn) {
    await conn.request('quit', 2000).catch(() => undefined);
    conn.close();
  }
  await waitGone(pids, 3000);
  log.info({ helperPids: pids }, 'stopped the udp data path');
  return true;
}
