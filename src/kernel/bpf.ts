import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { run } from '../util/exec.js';
import { WeftError } from '../util/errors.js';

/**
 * The BPF fast path's kernel calls: the native loader `weft-fastpath` (native/fastpath/, built with
 * the BPF object into dist/native/fastpath/ by scripts/build-fastpath.mjs). One process per change:
 * the agent hands it a whole script (1,000 peers in one run), the CNI plugin one pod. It answers with
 * one JSON object; exit 3 means the kernel cannot run the fast path (the reason is one line).
 */
const DIR = new URL('../../native/fastpath/', import.meta.url);
export const FASTPATH_LOADER = fileURLToPath(new URL('weft-fastpath', DIR));
export const FASTPATH_OBJECT = fileURLToPath(new URL('fastpath.bpf.o', DIR));

export type LoaderAnswer = Record<string, unknown>;

/** The kernel (or the build) cannot run the fast path: `message` is the one-line reason. */
export class FastPathUnsupported extends WeftError {}

/** Whether the loader and the object were built (a build machine without clang/libbpf skips them). */
export function fastPathMissing(): string | undefined {
  if (!existsSync(FASTPATH_LOADER) || !existsSync(FASTPATH_OBJECT))
    return `weft's BPF fast path is not built (${FASTPATH_OBJECT} missing): scripts/install.sh installs clang, llvm, libbpf-dev and bpftool, then npm run build`;
  return undefined;
}

function answer(code: number | null, stdout: string, stderr: string, what: string): LoaderAnswer {
  let json: LoaderAnswer | undefined;
  try {
    json = JSON.parse(stdout.trim().split('\n').pop() ?? '') as LoaderAnswer;
  } catch {
    json = undefined;
  }
  if (code === 3 && typeof json?.unsupported === 'string') throw new FastPathUnsupported(json.unsupported);
  if (code !== 0 || !json) {
    const why = typeof json?.error === 'string' ? json.error : stderr.trim() || `exit ${String(code)}`;
    throw new WeftError(`weft-fastpath ${what}: ${why}`);
  }
  return json;
}

/** Runs the loader with a script on stdin (the agent: load, subnet, peers, devices, pods, stats). */
export async function runFastPathScript(lines: string[]): Promise<LoaderAnswer> {
  const r = await run(FASTPATH_LOADER, ['run'], { input: lines.join('\n') + '\n', allowFailure: true });
  return answer(r.code, r.stdout, r.stderr, lines[0]?.split(' ')[0] ?? 'run');
}

/** One loader command (status, stats, unload, probe OBJ). */
export async function runFastPath(args: string[]): Promise<LoaderAnswer> {
  const r = await run(FASTPATH_LOADER, args, { allowFailure: true });
  return answer(r.code, r.stdout, r.stderr, args[0] ?? '');
}

/** The same, synchronously (the CNI plugin is synchronous); with `script`, its lines on stdin (`run`). */
export function runFastPathSync(args: string[], script?: string[]): LoaderAnswer {
  const input = script && script.join('\n') + '\n';
  const r = spawnSync(FASTPATH_LOADER, args, { encoding: 'utf8', input });
  if (r.error) throw new WeftError(`cannot run ${FASTPATH_LOADER}: ${r.error.message}`);
  return answer(r.status, r.stdout, r.stderr, args[0] ?? '');
}
