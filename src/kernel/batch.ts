import { runTool, runToolSync, type ToolResult } from './exec.js';
import { render, type BatchTool, type Op } from './ops.js';

/**
 * The one batch runner of iproute2: many commands in one `ip -batch -` (or `bridge -batch -`) process,
 * and one parser of its failures that says which line failed and what the kernel answered.
 */

/** One line of a batch that failed, with the kernel's message. */
export interface BatchFailure {
  /** 1-based line number in the batch; 0 when the batch failed as a whole (the tool did not run). */
  line: number;
  command: string;
  message: string;
}

export interface BatchOptions {
  tool?: BatchTool;
  /** NAME, /run/netns/NAME or /proc/PID/ns/net; default: the caller's namespace. */
  netns?: string;
  /** Continue after a failing line (default) instead of stopping at the first one. */
  force?: boolean;
  /** Pass -json: commands that print (`addr show`, `route show`) print one JSON document per line. */
  json?: boolean;
}

export interface BatchOutcome {
  failures: BatchFailure[];
  /** What the commands printed (JSON documents with `json`). */
  stdout: string;
}

function batchArgs(o: BatchOptions): string[] {
  return [...(o.json ? ['-json'] : []), ...(o.force === false ? [] : ['-force']), '-batch', '-'];
}

export interface ParsedBatch {
  failures: BatchFailure[];
  /**
   * Set when the tool gave up in the middle: `ip neigh` commands end the whole process on a kernel
   * error, even with -force. The lines from here on (0-based) were not run and must be run again.
   */
  resumeAt?: number;
}

/**
 * Reads iproute2's batch errors: each failing line prints its error (`Error: …` or `RTNETLINK answers:
 * …`), then `Command failed -:N`. An error without that line means the tool stopped there: it is
 * charged to the first `neigh` line after the last reported failure (the only commands that stop a
 * forced batch), and the rest is to be run again. A non-zero exit with no error at all is a failure of
 * the batch as a whole (line 0).
 */
export function parseBatch(
  lines: readonly string[],
  r: Pick<ToolResult, 'code' | 'stderr'>,
  tool: BatchTool = 'ip',
): ParsedBatch {
  if (r.code === 0) return { failures: [] };
  const failures: BatchFailure[] = [];
  let pending: string[] = [];
  const message = () =>
    pending
      .join('; ')
      .replace(/^Error: /, '')
      .trim();
  for (const l of r.stderr.split('\n')) {
    const m = /^Command failed -:(\d+)/.exec(l);
    if (m) {
      const line = Number(m[1]);
      failures.push({ line, command: lines[line - 1] ?? '', message: message() || 'failed' });
      pending = [];
    } else if (l.trim()) pending.push(l.trim());
  }
  if (pending.length > 0) {
    const after = failures.length > 0 ? failures[failures.length - 1]!.line : 0;
    const at = lines.findIndex((l, i) => i >= after && /^neigh\s/.test(l));
    if (at >= 0) {
      failures.push({ line: at + 1, command: lines[at]!, message: message() });
      return { failures, ...(at + 1 < lines.length && { resumeAt: at + 1 }) };
    }
  }
  if (failures.length === 0)
    failures.push({ line: 0, command: `${tool} -batch`, message: message() || `exit ${String(r.code)}` });
  return { failures };
}

export const parseBatchFailures = (
  lines: readonly string[],
  r: Pick<ToolResult, 'code' | 'stderr'>,
  tool: BatchTool = 'ip',
): BatchFailure[] => parseBatch(lines, r, tool).failures;

/**
 * The steps of one batch: yields the lines to run, receives what the tool did, and runs the rest again
 * after a stop in the middle. Driven by batch (async) and batchSync alike.
 */
function* batchSteps(
  lines: readonly string[],
  o: BatchOptions,
): Generator<readonly string[], BatchOutcome, ToolResult> {
  const tool = o.tool ?? 'ip';
  const failures: BatchFailure[] = [];
  let stdout = '';
  for (let offset = 0; offset < lines.length;) {
    const chunk = lines.slice(offset);
    const r = yield chunk;
    stdout += r.stdout;
    const p = parseBatch(chunk, r, tool);
    failures.push(...p.failures.map((f) => (f.line === 0 ? f : { ...f, line: f.line + offset })));
    if (p.resumeAt === undefined || o.force === false) break;
    offset += p.resumeAt;
  }
  return { failures, stdout };
}

const inputOf = (lines: readonly string[]) => lines.join('\n') + '\n';

export async function batch(lines: readonly string[], o: BatchOptions = {}): Promise<BatchOutcome> {
  const steps = batchSteps(lines, o);
  for (let step = steps.next(); ;) {
    if (step.done) return step.value;
    const r = await runTool(o.tool ?? 'ip', batchArgs(o), { input: inputOf(step.value), netns: o.netns });
    step = steps.next(r);
  }
}

export function batchSync(lines: readonly string[], o: BatchOptions = {}): BatchOutcome {
  const steps = batchSteps(lines, o);
  for (let step = steps.next(); ;) {
    if (step.done) return step.value;
    const r = runToolSync(o.tool ?? 'ip', batchArgs(o), { input: inputOf(step.value), netns: o.netns });
    step = steps.next(r);
  }
}

// ------------------------------------------------------------------------------------------- ops

/** An Op that failed: its index in the list given, the command it was rendered as, the kernel's answer. */
export interface OpFailure {
  index: number;
  op: Op;
  command: string;
  message: string;
}

export interface ExecuteOptions {
  netns?: string;
  /** Stop at the first failure (the CNI plugin's steps depend on each other); default: go on. */
  stopOnFailure?: boolean;
}

/** Consecutive Ops for the same tool, run as one batch (so the order of the whole list is kept). */
interface Group {
  tool: BatchTool;
  start: number;
  lines: string[];
}

export function groupOps(ops: readonly Op[]): Group[] {
  const groups: Group[] = [];
  ops.forEach((op, i) => {
    const r = render(op);
    const last = groups[groups.length - 1];
    if (last && last.tool === r.tool) last.lines.push(r.line);
    else groups.push({ tool: r.tool, start: i, lines: [r.line] });
  });
  return groups;
}

function opFailures(ops: readonly Op[], g: Group, fs: BatchFailure[]): OpFailure[] {
  return fs.map((f) => {
    // A failure of the batch as a whole (line 0) is charged to its first op.
    const index = g.start + Math.max(0, f.line - 1);
    return { index, op: ops[index]!, command: `${g.tool} ${f.command}`, message: f.message };
  });
}

/** Carries out Ops with iproute2, in order, one process per run of same-tool Ops. */
export async function executeOps(ops: readonly Op[], o: ExecuteOptions = {}): Promise<OpFailure[]> {
  const out: OpFailure[] = [];
  for (const g of groupOps(ops)) {
    const r = await batch(g.lines, { tool: g.tool, netns: o.netns, force: !o.stopOnFailure });
    out.push(...opFailures(ops, g, r.failures));
    if (o.stopOnFailure && out.length > 0) break;
  }
  return out;
}

export function executeOpsSync(ops: readonly Op[], o: ExecuteOptions = {}): OpFailure[] {
  const out: OpFailure[] = [];
  for (const g of groupOps(ops)) {
    const r = batchSync(g.lines, { tool: g.tool, netns: o.netns, force: !o.stopOnFailure });
    out.push(...opFailures(ops, g, r.failures));
    if (o.stopOnFailure && out.length > 0) break;
  }
  return out;
}
