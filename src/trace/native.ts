import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { WeftError } from '../util/errors.js';
import type { LoaderEvent } from './types.js';

/**
 * The node-local half of a trace as a child process (dist/native/trace/weft-trace-node): commands
 * go to its stdin, its JSON lines come back as events. It dies with this process (PR_SET_PDEATHSIG),
 * and whatever it attached goes with it.
 */
export const LOADER = fileURLToPath(new URL('../../native/trace/weft-trace-node', import.meta.url));

export class TraceLoader {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly waiters: { pred: (e: LoaderEvent) => boolean; resolve: (e: LoaderEvent) => void }[] = [];
  readonly events: LoaderEvent[] = [];
  private exited: Promise<number | null>;
  private stderr = '';
  listeners: ((e: LoaderEvent) => void)[] = [];
  private readonly born = performance.now();

  private constructor() {
    this.child = spawn(LOADER, [], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    this.child.stdin.on('error', () => undefined);
    this.child.stderr.on('data', (b: Buffer) => (this.stderr = (this.stderr + b.toString()).slice(-2000)));
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      let e: LoaderEvent;
      try {
        e = JSON.parse(line) as LoaderEvent;
      } catch {
        return;
      }
      this.events.push(e);
      if (process.env.WEFT_TRACE_DEBUG)
        process.stderr.write(`[trace ${Math.round(performance.now() - this.born)} ms] ${line}\n`);
      for (const l of this.listeners) l(e);
      for (const w of [...this.waiters])
        if (w.pred(e)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(e);
        }
    });
  }

  static async start(): Promise<TraceLoader> {
    if (!existsSync(LOADER))
      throw new WeftError(`weft trace's native half is not built (${LOADER} is missing)`, {
        hint: 'install clang, bpftool, libbpf-dev and libnftables-dev (scripts/install.sh does), then npm run build',
      });
    const l = new TraceLoader();
    const first = await Promise.race([
      l.waitFor((e) => e.ev === 'ready' || e.ev === 'error', 10_000),
      l.exited.then(() => undefined),
    ]);
    if (!first || first.ev !== 'ready') {
      await l.close();
      const why = first && first.ev === 'error' ? first.message : l.stderr.trim() || 'it exited';
      throw new WeftError(`cannot start the trace loader: ${why}`, {
        hint: 'weft trace needs root and a kernel with BTF and tcx (6.6+)',
      });
    }
    return l;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  send(line: string): void {
    this.child.stdin.write(line + '\n');
  }

  /** The first event (already seen or still to come) that satisfies pred; undefined after timeoutMs. */
  waitFor(
    pred: (e: LoaderEvent) => boolean,
    timeoutMs: number,
    includePast = false,
  ): Promise<LoaderEvent | undefined> {
    if (includePast) {
      const seen = this.events.find(pred);
      if (seen) return Promise.resolve(seen);
    }
    return new Promise((resolve) => {
      const w = { pred, resolve: (e: LoaderEvent | undefined) => (clearTimeout(timer), resolve(e)) };
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(w as never);
        if (i >= 0) this.waiters.splice(i, 1);
        resolve(undefined);
      }, timeoutMs);
      this.waiters.push(w as never);
    });
  }

  /**
   * Waits until every namespace in `watch` is attached and every one in `nft` traces (its monitor
   * confirmed, or it failed); false when that took longer than timeoutMs.
   */
  async setUp(watch: string[], nft: string[], timeoutMs = 15_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    const done = () => {
      const watched = new Set(this.events.flatMap((e) => (e.ev === 'watching' ? [e.path] : [])));
      const traced = new Set(
        this.events.flatMap((e) => (e.ev === 'nft-ready' || (e.ev === 'error' && e.path) ? [e.path!] : [])),
      );
      return watch.every((p) => watched.has(p)) && nft.every((p) => traced.has(p));
    };
    while (!done() && Date.now() < deadline) await this.waitFor(() => true, 200);
    return done();
  }

  /** Ends the loader (quit, then SIGKILL if it lingers); the kernel drops everything it held. */
  async close(): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.send('quit');
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill('SIGKILL'), 2000);
    await this.exited;
    clearTimeout(t);
  }
}
