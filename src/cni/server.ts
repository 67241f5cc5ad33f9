import { chmodSync, mkdirSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../util/log.js';
import { CniError, ERR } from './errors.js';
import { errorOutcome } from './run.js';

/**
 * The resident side of weft-cni's fast path. Starting Node costs ~50 ms per plugin call, more than the
 * whole ADD of the reference plugins; so the `weft-cni` executable is a small C shim (native/cni-shim.c)
 * that forwards the call to this server, which runs the very same verb code (run.ts) with everything
 * already loaded, in worker threads so that the agent's own event loop never blocks on it. When no
 * server answers, the shim runs the Node plugin itself: nothing depends on the server being up.
 *
 * Where: one socket per network namespace, /run/weft/cni/net-<inode of the netns>.sock — the shim runs
 * in the node's namespace (as the runtime runs it) and finds the server of that node, also when several
 * nodes of a lab share one filesystem. The directory is root-only (0700): only root may ask.
 *
 * Wire format (one request per connection):
 *   request   "weft-cni/1 <nvars> <stdin-bytes>\n", nvars × "KEY=VALUE\0" (the CNI_* variables), stdin
 *   response  "<exit-code> <stdout-bytes> <stderr-bytes>\n", stdout, stderr
 */

export const CNI_SOCKET_DIR = '/run/weft/cni';
const MAX_REQUEST = 4 * 1024 * 1024;

/** The socket of the server for the calling process's network namespace. */
export function cniSocketPath(dir = CNI_SOCKET_DIR): string {
  return join(dir, `net-${statSync('/proc/self/ns/net').ino}.sock`);
}

export interface CniServer {
  path: string;
  close(): Promise<void>;
}

interface Request {
  vars: Record<string, string>;
  input: string;
}

interface Reply {
  id: number;
  code: number;
  stdout: string;
  stderr: string;
}

/** Parses a complete request frame; undefined while more bytes are needed; throws on a malformed one. */
export function parseRequest(buf: Buffer): Request | undefined {
  const nl = buf.indexOf(10);
  if (nl < 0) {
    if (buf.length > 64) throw new Error('no header line');
    return undefined;
  }
  const m = /^weft-cni\/1 (\d+) (\d+)$/.exec(buf.subarray(0, nl).toString('latin1'));
  if (!m) throw new Error('bad header');
  const [nvars, inputLen] = [Number(m[1]), Number(m[2])];
  let at = nl + 1;
  const vars: Record<string, string> = {};
  for (let i = 0; i < nvars; i++) {
    const end = buf.indexOf(0, at);
    if (end < 0) return undefined;
    const kv = buf.subarray(at, end).toString('utf8');
    const eq = kv.indexOf('=');
    if (eq > 0 && kv.startsWith('CNI_')) vars[kv.slice(0, eq)] = kv.slice(eq + 1);
    at = end + 1;
  }
  if (buf.length < at + inputLen) return undefined;
  return { vars, input: buf.subarray(at, at + inputLen).toString('utf8') };
}

function frame(r: Omit<Reply, 'id'>): Buffer {
  const out = Buffer.from(r.stdout, 'utf8');
  const err = Buffer.from(r.stderr, 'utf8');
  return Buffer.concat([Buffer.from(`${r.code} ${out.length} ${err.length}\n`), out, err]);
}

/**
 * Worker threads on demand, each serving one request at a time: the verbs overlap where they can
 * (kernel batches, other namespaces) and serialise where they must (the allocation lock, exactly as
 * between plugin processes). They start on demand — while all are busy, up to `max` — and stop after
 * two minutes without work: pods arriving in a stream find them loaded, and an idle agent carries none
 * (a worker is ~10 MB; the first call after a quiet spell pays its start, ~50 ms, as a Node plugin would).
 */
const IDLE_MS = 120_000;
class WorkerPool {
  private readonly workers = new Map<Worker, { jobs: Set<number>; idle?: NodeJS.Timeout }>();
  private readonly pending = new Map<number, (r: Reply) => void>();
  private next = 0;

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  private spawn(): Worker {
    const w = new Worker(new URL('./worker.js', import.meta.url));
    const st: { jobs: Set<number>; idle?: NodeJS.Timeout } = { jobs: new Set() };
    this.workers.set(w, st);
    w.on('message', (r: Reply) => {
      st.jobs.delete(r.id);
      this.settle(r);
      if (st.jobs.size === 0)
        st.idle = setTimeout(() => {
          this.workers.delete(w);
          void w.terminate();
        }, IDLE_MS).unref();
    });
    w.on('error', (e) => this.log.error({ err: e.message }, 'CNI worker failed'));
    w.on('exit', () => {
      this.workers.delete(w);
      // Whatever it was serving gets an answer: a spec error the runtime retries on.
      for (const id of st.jobs) this.settle({ id, ...tryAgain('the CNI worker stopped') });
    });
    return w;
  }

  private settle(r: Reply): void {
    this.pending.get(r.id)?.(r);
    this.pending.delete(r.id);
  }

  run(req: Request): Promise<Reply> {
    const entries = [...this.workers];
    let pick = entries.find(([, st]) => st.jobs.size === 0)?.[0];
    if (!pick && this.workers.size < this.max) pick = this.spawn();
    pick ??= entries.reduce((a, b) => (b[1].jobs.size < a[1].jobs.size ? b : a))[0]!;
    const st = this.workers.get(pick)!;
    clearTimeout(st.idle);
    const id = this.next++;
    st.jobs.add(id);
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      pick.postMessage({ id, ...req });
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.keys()].map((w) => w.terminate()));
  }
}

function tryAgain(msg: string): Omit<Reply, 'id'> {
  return { ...errorOutcome(new CniError(ERR.TRY_AGAIN, `weft-cni: ${msg}; try again`)), stderr: '' };
}

export async function startCniServer(o: { log: Logger; dir?: string; workers?: number }): Promise<CniServer> {
  const dir = o.dir ?? CNI_SOCKET_DIR;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  const path = cniSocketPath(dir);
  try {
    unlinkSync(path); // a socket left by a process that died: nobody listens on it any more
  } catch {
    /* none */
  }
  const pool = new WorkerPool(o.workers ?? Math.min(8, 2 * availableParallelism()), o.log);

  const serve = (sock: Socket) => {
    let buf = Buffer.alloc(0);
    let done = false;
    sock.on('error', () => undefined);
    sock.on('data', (chunk: Buffer) => {
      if (done) return;
      buf = Buffer.concat([buf, chunk]);
      let req: Request | undefined;
      try {
        if (buf.length > MAX_REQUEST) throw new Error('request too large');
        req = parseRequest(buf);
      } catch (e) {
        done = true;
        o.log.warn({ err: (e as Error).message }, 'malformed CNI request');
        sock.destroy();
        return;
      }
      if (!req) return;
      done = true;
      const t0 = performance.now();
      const { vars } = req;
      void pool.run(req).then((r) => {
        o.log.info(
          {
            command: vars.CNI_COMMAND,
            containerId: vars.CNI_CONTAINERID,
            ifname: vars.CNI_IFNAME,
            code: r.code,
            ms: Math.round((performance.now() - t0) * 10) / 10,
          },
          'CNI request served',
        );
        sock.end(frame(r));
      });
    });
  };
  // Half-open: the shim closes its side after the request and waits for the answer on the other.
  const server: Server = createServer({ allowHalfOpen: true }, serve);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o600);
  o.log.info({ socket: path }, 'serving weft-cni requests (fast path)');
  return {
    path,
    close: async () => {
      await new Promise<void>((r) => server.close(() => r()));
      await pool.close();
      try {
        unlinkSync(path);
      } catch {
        /* gone */
      }
    },
  };
}
