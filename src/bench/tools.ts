import type { ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { execIn, pingOnce, spawnIn } from '../kernel/netns.js';
import { run } from '../util/exec.js';
import { WeftError } from '../util/errors.js';
import type { Endpoint } from './result.js';

/**
 * The measuring tools, each run inside the namespaces of a path's two ends: iperf3 for TCP throughput,
 * sockperf ping-pong for request/response latency, /proc/stat for the machine's CPU. A server is
 * started per measurement and always killed afterwards, so nothing outlives a run.
 */

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** sockperf colours some lines: the escapes go before figures are read. */
const stripAnsi = (s: string): string => s.replace(new RegExp(String.raw`\u001b\[[0-9;]*m`, 'g'), '');

/** A measurement that could not be taken (the tool failed or could not connect), with its words. */
export class MeasurementError extends WeftError {}

export interface ThroughputSample {
  gbps: number;
  retransmits: number;
  busyCores: number;
  senderCpuPercent: number;
  receiverCpuPercent: number;
}

export interface LatencySample {
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  meanUs: number;
}

// ------------------------------------------------------------------------------------------- CPU
interface CpuTimes {
  busy: number;
  total: number;
}

/** The machine's aggregate CPU jiffies (first line of /proc/stat): busy includes irq and softirq. */
async function cpuTimes(): Promise<CpuTimes> {
  const line = (await readFile('/proc/stat', 'utf8')).split('\n')[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number) as number[];
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idle! + iowait! };
}

/** Cores kept busy between two readings (0 … number of CPUs). */
const busyCoresBetween = (a: CpuTimes, b: CpuTimes): number =>
  b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * cpus().length : 0;

// ------------------------------------------------------------------------------------------- servers
/** Waits until something listens on TCP `port` in `netns` (a server just spawned). */
async function waitListening(netns: string, port: number, what: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await execIn(netns, ['ss', '-Hltn', `sport = :${port}`], { allowFailure: true });
    if (r.stdout.trim() !== '') return;
    await sleep(50);
  }
  throw new MeasurementError(`${what} did not start listening on port ${port} in ${netns}`);
}

/** Servers of measurements in progress, so that an interrupted bench can kill them. */
const liveServers = new Set<ChildProcess>();

export function killServers(): void {
  for (const s of liveServers) s.kill('SIGKILL');
}

async function withServer<T>(netns: string, argv: string[], port: number, fn: () => Promise<T>): Promise<T> {
  const server: ChildProcess = spawnIn(netns, argv, { stdio: ['ignore', 'ignore', 'pipe'] });
  liveServers.add(server);
  let stderr = '';
  server.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
  try {
    await Promise.race([
      waitListening(netns, port, argv[0]!),
      exited.then(() => {
        throw new MeasurementError(`${argv[0]} server in ${netns} exited: ${stderr.trim() || 'no output'}`);
      }),
    ]);
    return await fn();
  } finally {
    // `ip netns exec` execs the server, so this pid is the server itself.
    server.kill('SIGKILL');
    await exited;
    liveServers.delete(server);
  }
}

// ------------------------------------------------------------------------------------------- iperf3
interface Iperf3Json {
  error?: string;
  end?: {
    sum_sent?: { retransmits?: number };
    sum_received?: { bits_per_second?: number };
    cpu_utilization_percent?: { host_total?: number; remote_total?: number };
  };
}

/**
 * One iperf3 TCP run from `from` to `to`: `warmup` seconds omitted (-O), then `seconds` measured.
 * The machine's CPU is sampled over the measured part only.
 */
export async function iperf3(
  from: Endpoint,
  to: Endpoint,
  o: { streams: number; seconds: number; warmup: number; port: number },
): Promise<ThroughputSample> {
  return withServer(to.netns, ['iperf3', '-s', '-1', '-B', to.ip, '-p', String(o.port)], o.port, async () => {
    const client = execIn(
      from.netns,
      [
        'iperf3',
        '-c',
        to.ip,
        '-p',
        String(o.port),
        '-t',
        String(o.seconds),
        '-O',
        String(o.warmup),
        '-P',
        String(o.streams),
        '-J',
      ],
      { allowFailure: true, timeoutMs: (o.seconds + o.warmup + 30) * 1000 },
    );
    await sleep(o.warmup * 1000 + 100);
    const cpu0 = await cpuTimes();
    const r = await client;
    const cpu1 = await cpuTimes();
    let j: Iperf3Json;
    try {
      j = JSON.parse(r.stdout) as Iperf3Json;
    } catch {
      throw new MeasurementError(`iperf3 ${from.name} → ${to.name}: ${r.stderr.trim() || 'no output'}`);
    }
    if (j.error) throw new MeasurementError(`iperf3 ${from.name} → ${to.name}: ${j.error}`);
    const bps = j.end?.sum_received?.bits_per_second;
    if (bps === undefined) throw new MeasurementError(`iperf3 ${from.name} → ${to.name}: no result`);
    return {
      gbps: bps / 1e9,
      retransmits: j.end?.sum_sent?.retransmits ?? 0,
      busyCores: busyCoresBetween(cpu0, cpu1),
      senderCpuPercent: j.end?.cpu_utilization_percent?.host_total ?? 0,
      receiverCpuPercent: j.end?.cpu_utilization_percent?.remote_total ?? 0,
    };
  });
}

// ------------------------------------------------------------------------------------------- sockperf

/** The value of one line of sockperf's summary, e.g. "---> percentile 99.000 =  542.090". */
function sockperfFigure(text: string, re: RegExp): number | undefined {
  const m = re.exec(text);
  return m ? Number(m[1]) : undefined;
}

/**
 * sockperf ping-pong over TCP with --full-rtt: every figure is a whole round trip in microseconds
 * (sockperf's default would be half of it). sockperf drops its own 400 ms warm-up. A run that got no
 * answer at all (one lost first segment costs TCP its 1 s initial retransmission timeout, as long as
 * a short run: seen on a userspace data path right after a 4-stream flood) fails here; the bench
 * runs a failed measurement once more.
 */
export async function sockperfPingPong(
  from: Endpoint,
  to: Endpoint,
  o: { seconds: number; port: number },
): Promise<LatencySample> {
  const server = ['sockperf', 'server', '--tcp', '-i', to.ip, '-p', String(o.port)];
  return withServer(to.netns, server, o.port, async () => {
    const r = await execIn(
      from.netns,
      [
        'sockperf',
        'ping-pong',
        '--tcp',
        '--full-rtt',
        '-i',
        to.ip,
        '-p',
        String(o.port),
        '-t',
        String(o.seconds),
      ],
      { allowFailure: true, timeoutMs: (o.seconds + 30) * 1000 },
    );
    const text = stripAnsi(r.stdout + r.stderr);
    const pct = (p: string) => sockperfFigure(text, new RegExp(`percentile ${p} =\\s*([\\d.]+)`));
    const sample = {
      p50Us: pct('50\\.000'),
      p90Us: pct('90\\.000'),
      p99Us: pct('99\\.000'),
      p999Us: pct('99\\.900'),
      meanUs: sockperfFigure(text, /avg-rtt=([\d.]+)/),
    };
    if (r.code !== 0 || Object.values(sample).some((v) => v === undefined)) {
      const last = text.trim().split('\n').slice(-2).join(' | ');
      throw new MeasurementError(`sockperf ${from.name} → ${to.name}: ${last || `exit ${String(r.code)}`}`);
    }
    return sample as LatencySample;
  });
}

// ------------------------------------------------------------------------------------------- reachability
/** Pings until a reply comes back or `timeoutMs` passes (a freshly switched data path may need a moment). */
export async function reachable(from: Endpoint, to: Endpoint, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  do {
    if (await pingOnce(from.netns, to.ip)) return true;
    await sleep(200);
  } while (Date.now() < deadline);
  return false;
}

/** First line of a tool's version output, or a clear error when the tool is missing. */
export async function toolVersion(cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, { allowFailure: true }).catch(() => undefined);
  if (!r) {
    throw new WeftError(`${cmd} is not installed`, {
      hint: 'run scripts/install.sh (Debian package ' + cmd + ')',
    });
  }
  return stripAnsi(r.stdout + r.stderr)
    .trim()
    .split('\n')[0]!
    .trim();
}
