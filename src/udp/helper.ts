import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';

/**
 * The weft-udp executable (native/udp, built by scripts/post-build.mjs into dist/native/) and the
 * facts about it the supervisor needs: its arguments, the shape of its `config` and `stats` replies,
 * and how to find a running one in this network namespace without its control socket.
 */

export const HELPER_PATH =
  process.env.WEFT_UDP_HELPER ?? fileURLToPath(new URL('../../native/weft-udp', import.meta.url));

/** What one weft-udp is started with; a running one with other settings is replaced. */
export interface HelperSettings {
  tun: string;
  local: string;
  port: number;
  /** Largest inner packet the underlay carries: its MTU − 28. */
  mtu: number;
  batch: number;
  workers: number;
}

export function helperArgs(s: HelperSettings): string[] {
  return [
    `--tun=${s.tun}`,
    `--local=${s.local}`,
    `--port=${s.port}`,
    `--mtu=${s.mtu}`,
    `--batch=${s.batch}`,
    `--workers=${s.workers}`,
  ];
}

/** One worker on a small machine (the kernel and the pods need the other cores), up to 4 on big ones. */
export function defaultWorkers(cpus = availableParallelism()): number {
  return cpus <= 2 ? 1 : Math.min(4, Math.floor(cpus / 2));
}

/** The reply to `config`. */
export interface HelperConfig extends HelperSettings {
  version: string;
  pid: number;
  mode: 'gso' | 'batch1';
}

export function sameSettings(running: HelperConfig, want: HelperSettings): boolean {
  // Flannel's mode runs one worker whatever was asked.
  const workers = want.batch === 1 ? 1 : want.workers;
  return (
    running.tun === want.tun &&
    running.local === want.local &&
    running.port === want.port &&
    running.mtu === want.mtu &&
    running.batch === want.batch &&
    running.workers === workers
  );
}

/** Histogram of inner packets per system call; counts[k] covers 2^k … 2^(k+1)−1 (the last: 128 and up). */
export interface BatchHistogram {
  sum: number;
  counts: number[];
}

/** The reply to `stats`: the data path's counters since it started. */
export interface HelperStats {
  pid: number;
  mode: string;
  workers: number;
  uptimeSeconds: number;
  peers: number;
  tx: { packets: number; bytes: number; syscalls: number; tunReads: number };
  rx: { packets: number; bytes: number; syscalls: number; tunWrites: number };
  icmp: Record<string, number>;
  pmtuEvents: number;
  gsoFallbacks: number;
  drops: Record<string, { direction: 'tx' | 'rx'; packets: number }>;
  batches: Record<'tun_read' | 'tx_send' | 'rx_recv' | 'rx_write', BatchHistogram>;
}

/** Parses a JSON reply line; a reply that is not an object (e.g. "error …") is an error. */
export function parseReply<T>(line: string, what: string): T {
  try {
    const v: unknown = JSON.parse(line);
    if (typeof v === 'object' && v !== null) return v as T;
  } catch {
    /* reported below */
  }
  throw new Error(`weft-udp answered "${what}" with ${JSON.stringify(line.slice(0, 80))}`);
}

const netnsInode = (pid: number | 'self'): number | undefined => {
  try {
    return statSync(`/proc/${pid}/ns/net`).ino;
  } catch {
    return undefined;
  }
};

/**
 * weft-udp processes serving `tun` in this network namespace, found through /proc (for one that holds
 * its control socket but no longer answers on it).
 */
export function findHelperPids(tun: string): number[] {
  const mine = netnsInode('self');
  const found: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const pid = Number(d);
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
      if (!argv[0]?.endsWith('weft-udp') || !argv.includes(`--tun=${tun}`)) continue;
      if (netnsInode(pid) === mine) found.push(pid);
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}

/** Whether the running process's executable was replaced on disk since it started (an upgrade). */
export function isOutdated(pid: number): boolean {
  try {
    return readlinkSync(`/proc/${pid}/exe`).endsWith(' (deleted)');
  } catch {
    return false;
  }
}
