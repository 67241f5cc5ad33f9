/**
 * weft-cni's address store: one file per allocation in `<dataDir>/<network>/`, named
 * `<ip>_<attachment hash>` so that a directory listing alone gives both the used addresses (for ADD) and
 * the owner of each (for DEL and GC); the file's content is the full record, for people and for GC.
 * Every change happens under a lock file created atomically with link(2); a lock left by a crashed
 * holder (its pid gone, or reused by another process) is broken safely, see FileLock.
 */
import { threadId } from 'node:worker_threads';
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  constants as fsc,
} from 'node:fs';
import { Cidr, formatIPv4, parseIPv4, type IPv4 } from '../util/ipv4.js';
import { CniError, ERR } from './errors.js';
import { HostLocalDir } from './host-local.js';
import type { AttachmentKey } from './names.js';

export { attachmentHash, hostVethName, HOST_VETH_RE, type AttachmentKey } from './names.js';

export interface AllocationRecord {
  containerId: string;
  ifname: string;
  /** "10.244.1.5/24" */
  address: string;
  hostVeth: string;
  netns?: string;
  /** K8S_POD_NAMESPACE/K8S_POD_NAME when the runtime sent them. */
  pod?: string;
  created: string;
}

export interface Allocation {
  ip: IPv4;
  hash: string;
  file: string;
}

const FILE_RE = /^(\d+\.\d+\.\d+\.\d+)_([0-9a-f]{16})$/;

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function errno(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code;
}

/** "pid starttime" of a process, or undefined when it does not exist. */
function processIdentity(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields after the last ')' are fixed.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return `${pid} ${rest[19] ?? '0'}`; // field 22 = starttime; rest[0] is field 3
  } catch {
    return undefined;
  }
}

/**
 * A lock file holding "pid starttime" of its holder. Acquire = link(2) a fully written temp file to the
 * lock name (atomic, fails with EEXIST). A holder that died (no such pid, or the pid now belongs to a
 * process with another start time) is broken under a second, short-lived "break" lock, re-reading the
 * lock under it so that a live holder's fresh lock is never removed.
 */
export class FileLock {
  private readonly me: string;
  constructor(
    readonly path: string,
    private readonly timeoutMs: number,
  ) {
    // "pid starttime", plus the thread when several threads of one process (the CNI server) take it.
    this.me = (processIdentity(process.pid) ?? `${process.pid} 0`) + (threadId ? ` t${threadId}` : '');
  }

  acquire(): void {
    const tmp = `${this.path}.${process.pid}.${threadId}`;
    writeFileSync(tmp, this.me + '\n');
    const deadline = Date.now() + this.timeoutMs;
    let wait = 1;
    try {
      for (;;) {
        try {
          linkSync(tmp, this.path);
          return;
        } catch (e) {
          if (errno(e) !== 'EEXIST') throw e;
        }
        const holder = this.readHolder();
        if (holder !== undefined && !this.alive(holder)) {
          this.breakStale(holder);
          continue;
        }
        if (Date.now() > deadline) {
          throw new CniError(
            ERR.TRY_AGAIN,
            `timed out after ${this.timeoutMs} ms waiting for the lock ${this.path}` +
              (holder ? ` held by pid ${holder.split(' ')[0]}` : ''),
          );
        }
        sleepMs(wait + Math.floor(Math.random() * wait));
        wait = Math.min(wait * 2, 4); // holders keep it ~1 ms: a long nap only adds latency
      }
    } finally {
      try {
        unlinkSync(tmp);
      } catch {
        /* already gone */
      }
    }
  }

  release(): void {
    try {
      if (this.readHolder() === this.me) unlinkSync(this.path);
    } catch {
      /* nothing to release */
    }
  }

  private readHolder(): string | undefined {
    try {
      return readFileSync(this.path, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  private alive(holder: string): boolean {
    const [p, start] = holder.split(' ');
    const pid = Number(p);
    if (!Number.isInteger(pid) || pid <= 0) return false;
    return processIdentity(pid) === `${pid} ${start}`;
  }

  private breakStale(holder: string): void {
    const brk = `${this.path}.break`;
    let fd: number;
    try {
      fd = openSync(brk, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
    } catch (e) {
      if (errno(e) !== 'EEXIST') throw e;
      // Another process is breaking it; a break lock older than 5 s belongs to a crashed breaker.
      try {
        if (Date.now() - statSync(brk).mtimeMs > 5000) unlinkSync(brk);
      } catch {
        /* gone meanwhile */
      }
      sleepMs(2);
      return;
    }
    try {
      if (this.readHolder() === holder) unlinkSync(this.path);
    } finally {
      closeSync(fd);
      unlinkSync(brk);
    }
  }
}

export interface StoreOptions {
  lockTimeoutMs?: number;
  /**
   * host-local's directory of the same range, shared (a node taken over from Flannel, whose pods got
   * their addresses from host-local): its addresses are never handed out, each one handed out is
   * reserved there too, and an attachment's files there are released with it (host-local.ts).
   */
  hostLocalDir?: string;
}

/** The allocation directory of one network on one node. */
export class IpamStore {
  readonly dir: string;
  private readonly lock: FileLock;
  private readonly shared: HostLocalDir | undefined;
  private locked = false;

  constructor(dir: string, opts: StoreOptions = {}) {
    this.dir = dir;
    this.lock = new FileLock(`${dir}/lock`, opts.lockTimeoutMs ?? 30_000);
    this.shared = opts.hostLocalDir === undefined ? undefined : new HostLocalDir(opts.hostLocalDir);
  }

  /** Runs fn holding the store's lock (creating the directory first). */
  withLock<T>(fn: () => T): T {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (e) {
      throw new CniError(ERR.IO, `cannot create the allocation store ${this.dir}: ${errno(e) ?? String(e)}`);
    }
    this.lock.acquire();
    this.locked = true;
    try {
      return fn();
    } finally {
      this.locked = false;
      this.lock.release();
    }
  }

  /** All allocations (any subnet). A missing directory means none. */
  list(): Allocation[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      if (errno(e) === 'ENOENT') return [];
      throw new CniError(ERR.IO, `cannot read the allocation store ${this.dir}: ${errno(e) ?? String(e)}`);
    }
    const out: Allocation[] = [];
    for (const file of names) {
      const m = FILE_RE.exec(file);
      if (!m) continue;
      const ip = parseIPv4(m[1]!);
      if (ip !== undefined) out.push({ ip, hash: m[2]!, file });
    }
    return out;
  }

  read(a: Allocation): AllocationRecord | undefined {
    try {
      return JSON.parse(readFileSync(`${this.dir}/${a.file}`, 'utf8')) as AllocationRecord;
    } catch {
      return undefined; // a record cut short by a crash: its name still says ip and owner
    }
  }

  findByHash(hash: string, all = this.list()): Allocation[] {
    return all.filter((a) => a.hash === hash);
  }

  /**
   * Picks a free address of `subnet` (never the network, gateway or broadcast address), after the last
   * one handed out so that a released address is not reused at once, or exactly `requested`. With a
   * shared host-local directory, for the attachment `key`: none of its addresses, and the one picked
   * reserved there (exclusively: a host-local ADD running at the same time loses or wins cleanly).
   */
  pick(subnet: Cidr, gateway: IPv4, used: Set<IPv4>, requested?: IPv4, key?: AttachmentKey): IPv4 {
    this.assertLocked();
    if (!this.shared || !key) return this.choose(subnet, gateway, used, requested);
    this.shared.release(key); // a reservation of an ADD of this attachment that died before its record
    const taken = new Set([...used, ...this.shared.used()]);
    for (;;) {
      const ip = this.choose(subnet, gateway, taken, requested);
      if (this.shared.reserve(formatIPv4(ip), key)) return ip;
      taken.add(ip); // host-local gave it meanwhile
    }
  }

  /**
   * Releases what host-local's directory holds for the attachment (a pod Flannel's CNI attached, as
   * host-local's own DEL would); returns the addresses. Nothing without a shared directory.
   */
  releaseShared(key: AttachmentKey): string[] {
    return this.shared?.release(key) ?? [];
  }

  private choose(subnet: Cidr, gateway: IPv4, used: Set<IPv4>, requested?: IPv4): IPv4 {
    const first = subnet.len >= 31 ? subnet.ip : subnet.host(1);
    const last = subnet.len >= 31 ? subnet.last : (subnet.last - 1) >>> 0;
    const usable = (ip: IPv4) => ip >= first && ip <= last && ip !== gateway;
    if (requested !== undefined) {
      if (!subnet.contains(requested) || !usable(requested)) {
        throw new CniError(
          ERR.NO_ADDRESS,
          `requested address ${formatIPv4(requested)} is not a usable address of the node's subnet ${subnet.toString()}`,
        );
      }
      if (used.has(requested)) {
        throw new CniError(ERR.NO_ADDRESS, `requested address ${formatIPv4(requested)} is already allocated`);
      }
      return requested;
    }
    const lastReserved = this.lastReserved();
    const start =
      lastReserved !== undefined && lastReserved >= first && lastReserved < last ? lastReserved + 1 : first;
    const count = last - first + 1;
    for (let i = 0; i < count; i++) {
      const ip = (first + ((start - first + i) % count)) >>> 0;
      if (usable(ip) && !used.has(ip)) return ip;
    }
    throw new CniError(
      ERR.NO_ADDRESS,
      `no free address left in the node's subnet ${subnet.toString()} (${used.size} allocated)`,
      'release stale allocations with DEL or GC, or give the node a larger subnet',
    );
  }

  /** Writes the record (atomically, temp + rename) before any device exists, and remembers the address. */
  write(ip: IPv4, hash: string, rec: AllocationRecord): Allocation {
    this.assertLocked();
    const file = `${formatIPv4(ip)}_${hash}`;
    const tmp = `${this.dir}/.${file}.tmp`;
    try {
      writeFileSync(tmp, JSON.stringify(rec) + '\n', { mode: 0o600 });
      renameSync(tmp, `${this.dir}/${file}`);
      writeFileSync(`${this.dir}/last_reserved_ip`, formatIPv4(ip));
    } catch (e) {
      throw new CniError(
        ERR.IO,
        `cannot write the allocation record ${this.dir}/${file}: ${errno(e) ?? String(e)}`,
      );
    }
    return { ip, hash, file };
  }

  /** Removes an allocation (and, when shared, its reservation in host-local's directory). */
  remove(a: Allocation): void {
    this.assertLocked();
    if (this.shared) {
      const rec = this.read(a);
      if (rec) this.shared.release({ containerId: rec.containerId, ifname: rec.ifname });
    }
    try {
      unlinkSync(`${this.dir}/${a.file}`);
    } catch (e) {
      if (errno(e) !== 'ENOENT')
        throw new CniError(ERR.IO, `cannot remove ${this.dir}/${a.file}: ${errno(e)}`);
    }
  }

  private lastReserved(): IPv4 | undefined {
    try {
      return parseIPv4(readFileSync(`${this.dir}/last_reserved_ip`, 'utf8').trim());
    } catch {
      return undefined;
    }
  }

  private assertLocked(): void {
    if (!this.locked) throw new CniError(ERR.INTERNAL, 'allocation store changed without its lock');
  }
}
