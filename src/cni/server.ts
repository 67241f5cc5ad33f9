import { chmodSync, mkdirSync, unlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { netnsTag } from '../kernel/netns-tag.js';
import type { Logger } from '../util/log.js';
import { loadAddon } from '../util/addon.js';

/**
 * The resident side of weft-cni's fast path. Starting Node costs ~50 ms per plugin call, more than the
 * whole ADD of the reference plugins; so the `weft-cni` executable is a small C shim (native/cni-shim.c)
 * that forwards the call to this server, which runs the very same verb code (run.ts) with everything
 * already loaded, in worker threads so that the agent's own event loop never blocks on it. When no
 * server answers, or it cannot serve a call, the shim runs the Node plugin itself: nothing depends on
 * the server being up.
 *
 * Where: one socket per network namespace, /run/weft/cni/net-<inode of the netns>.sock — the shim runs
 * in the node's namespace (as the runtime runs it) and finds the server of that node, also when several
 * nodes of a lab share one filesystem. The directory is root-only (0700): only root may ask.
 *
 * The pod's namespace comes as an open descriptor, not a path: the runtime and this server may live in
 * different mount namespaces (the agent as a DaemonSet pod, a runtime with its own), and a path like
 * /run/netns/cni-… is then a bind mount that only the runtime sees. The shim opens CNI_NETNS where it
 * runs and passes the descriptor (SCM_RIGHTS, received by a Node-API addon, native/cni-fdserver.c: Node's
 * net module cannot); the verbs here get CNI_NETNS=/proc/<this pid>/fd/<n>, which the kernel resolves
 * for this process and its children (`ip`, `nsenter`) whatever their mount namespace, and the answer
 * names the runtime's path again. The descriptor is closed when the call is answered. A request with a
 * CNI_NETNS but no descriptor is not served here (the path means nothing in this mount namespace).
 *
 * Wire format (one request per connection):
 *   request   "weft-cni/2 <nvars> <stdin-bytes>\n" (with the namespace's descriptor attached),
 *             nvars × "KEY=VALUE\0" (the CNI_* variables), stdin; then the shim shuts down its side
 *   response  "<exit-code> <stdout-bytes> <stderr-bytes>\n", stdout, stderr
 *             or "unserved <reason>\n": the shim runs the Node plugin instead
 */

export const CNI_SOCKET_DIR = '/run/weft/cni';

/** The socket of the server for the calling process's network namespace. */
export function cniSocketPath(dir = CNI_SOCKET_DIR): string {
  return join(dir, `${netnsTag()}.sock`);
}

export interface CniServer {
  path: string;
  close(): Promise<void>;
}

interface Request {
  vars: Record<string, string>;
  input: string;
}

/** A served call's answer, or why it was not served (the shim then runs the Node plugin). */
type Answer = { code: number; stdout: string; stderr: string } | { unserved: string };

/** Parses a complete request (the shim sent it whole, then shut down its side); throws when malformed. */
export function parseRequest(buf: Buffer): Request {
  const nl = buf.indexOf(10);
  const m = nl < 0 ? null : /^weft-cni\/2 (\d+) (\d+)$/.exec(buf.subarray(0, nl).toString('latin1'));
  if (!m) throw new Error('bad header');
  const [nvars, inputLen] = [Number(m[1]), Number(m[2])];
  let at = nl + 1;
  const vars: Record<string, string> = {};
  for (let i = 0; i < nvars; i++) {
    const end = buf.indexOf(0, at);
    if (end < 0) throw new Error('cut short');
    const kv = buf.subarray(at, end).toString('utf8');
    const eq = kv.indexOf('=');
    if (eq > 0 && kv.startsWith('CNI_')) vars[kv.slice(0, eq)] = kv.slice(eq + 1);
    at = end + 1;
  }
  if (buf.length !== at + inputLen) throw new Error('cut short');
  return { vars, input: buf.subarray(at).toString('utf8') };
}

function frame(a: Answer): Buffer {
  if ('unserved' in a) return Buffer.from(`unserved ${a.unserved}\n`);
  const out = Buffer.from(a.stdout, 'utf8');
  const err = Buffer.from(a.stderr, 'utf8');
  return Buffer.concat([Buffer.from(`${a.code} ${out.length} ${err.length}\n`), out, err]);
}

/**
 * The verbs see the namespace as /proc/<pid>/fd/<n>; the runtime must read back the path it gave
 * (results' `sandbox`, error messages), exactly as from the Node plugin. The handle occurs nowhere
 * else in an answer; stdout is JSON, so the path goes back in JSON-escaped.
 */
function renameNamespace(a: Answer, handle: string, path: string): Answer {
  if ('unserved' in a) return a;
  const re = new RegExp(`${handle.replaceAll('/', '\\/')}(?!\\d)`, 'g');
  const json = JSON.stringify(path).slice(1, -1);
  return { code: a.code, stdout: a.stdout.replace(re, () => json), stderr: a.stderr.replace(re, () => path) };
}

interface Job {
  resolve: (a: Answer) => void;
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
  private readonly pending = new Map<number, Job>();
  private next = 0;

  constructor(
    private readonly max: number,
    private readonly log: Logger,
  ) {}

  private spawn(): Worker {
    const w = new Worker(new URL('./worker.js', import.meta.url));
    const st: { jobs: Set<number>; idle?: NodeJS.Timeout } = { jobs: new Set() };
    this.workers.set(w, st);
    w.on('message', (r: { id: number; code: number; stdout: string; stderr: string }) => {
      st.jobs.delete(r.id);
      this.settle(r.id, { code: r.code, stdout: r.stdout, stderr: r.stderr });
      if (st.jobs.size === 0)
        st.idle = setTimeout(() => {
          this.workers.delete(w);
          void w.terminate();
        }, IDLE_MS).unref();
    });
    w.on('error', (e) => this.log.error({ err: e.message }, 'CNI worker failed'));
    w.on('exit', () => {
      this.workers.delete(w);
      // Whatever it was serving is not lost: the shim runs the Node plugin for it.
      for (const id of st.jobs) this.settle(id, { unserved: 'the CNI worker stopped' });
    });
    return w;
  }

  private settle(id: number, a: Answer): void {
    this.pending.get(id)?.resolve(a);
    this.pending.delete(id);
  }

  run(req: Request): Promise<Answer> {
    const entries = [...this.workers];
    let pick = entries.find(([, st]) => st.jobs.size === 0)?.[0];
    if (!pick && this.workers.size < this.max) pick = this.spawn();
    pick ??= entries.reduce((a, b) => (b[1].jobs.size < a[1].jobs.size ? b : a))[0]!;
    const st = this.workers.get(pick)!;
    clearTimeout(st.idle);
    const id = this.next++;
    st.jobs.add(id);
    return new Promise((resolve) => {
      this.pending.set(id, { resolve });
      pick.postMessage({ id, ...req });
    });
  }

  async close(): Promise<void> {
    await Promise.all([...this.workers.keys()].map((w) => w.terminate()));
  }
}

/** native/cni-fdserver.c, built next to this file by scripts/post-build.mjs. */
interface FdServerAddon {
  listen(path: string, onRequest: (conn: number, request: Buffer, fd: number) => void): number;
  reply(conn: number, data: Buffer): boolean;
  closeFd(fd: number): void;
  stop(handle: number): void;
}

export async function startCniServer(o: { log: Logger; dir?: string; workers?: number }): Promise<CniServer> {
  const addon = loadAddon<FdServerAddon>(
    new URL('./fdserver.node', import.meta.url),
    "the fast path's socket side",
  );
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
  let inFlight = 0;
  let drained: (() => void) | undefined;

  /** The answer to one request; the descriptor and connection are the caller's to close. */
  const serve = async (buf: Buffer, fd: number): Promise<Answer> => {
    let req: Request;
    try {
      req = parseRequest(buf);
    } catch (e) {
      o.log.warn({ err: (e as Error).message }, 'malformed CNI request');
      return { unserved: 'malformed request' };
    }
    const t0 = performance.now();
    const { vars } = req;
    const netns = vars.CNI_NETNS;
    let answer: Answer;
    if (netns && fd < 0) {
      answer = { unserved: 'CNI_NETNS came without its descriptor' };
    } else if (netns) {
      const handle = `/proc/${process.pid}/fd/${fd}`;
      const r = await pool.run({ vars: { ...vars, CNI_NETNS: handle }, input: req.input });
      answer = renameNamespace(r, handle, netns);
    } else {
      answer = await pool.run(req); // no namespace involved (VERSION, STATUS, GC, a DEL without one)
    }
    o.log.info(
      {
        command: vars.CNI_COMMAND,
        containerId: vars.CNI_CONTAINERID,
        ifname: vars.CNI_IFNAME,
        ...('unserved' in answer ? { unserved: answer.unserved } : { code: answer.code }),
        ms: Math.round((performance.now() - t0) * 10) / 10,
      },
      'unserved' in answer ? 'CNI request not served' : 'CNI request served',
    );
    return answer;
  };

  const handle = addon.listen(path, (conn, buf, fd) => {
    inFlight++;
    void serve(buf, fd)
      .catch((e: unknown): Answer => {
        o.log.error({ err: (e as Error).message }, 'CNI request failed');
        return { unserved: 'internal error' };
      })
      .then((answer) => {
        addon.closeFd(fd); // the call is over: the namespace is the runtime's again
        addon.reply(conn, frame(answer));
        if (--inFlight === 0) drained?.();
      });
  });
  chmodSync(path, 0o600);
  o.log.info({ socket: path }, 'serving weft-cni requests (fast path)');
  let closed = false;
  return {
    path,
    close: async () => {
      if (closed) return;
      closed = true;
      addon.stop(handle);
      try {
        unlinkSync(path);
      } catch {
        /* gone */
      }
      // Calls in flight are answered (by a worker, or "unserved" when the pool stops under them).
      if (inFlight > 0) await new Promise<void>((r) => ((drained = r), setTimeout(r, 5000).unref()));
      await pool.close();
    },
  };
}
