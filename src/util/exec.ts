import { spawn } from 'node:child_process';
import { CommandError } from './errors.js';

export interface RunOptions {
  /** Written to the child's stdin, which is then closed. */
  input?: string;
  /** Extra environment; the parent's environment is inherited unless `env` replaces it. */
  env?: NodeJS.ProcessEnv;
  /** Resolve instead of throwing when the command exits non-zero. */
  allowFailure?: boolean;
  /** Kill the child after this many milliseconds. */
  timeoutMs?: number;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program without a shell and collects its output. Throws CommandError (naming the command line
 * and its stderr) when it exits non-zero, unless allowFailure is set.
 */
export function run(file: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: opts.env ?? process.env,
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs,
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', (e: NodeJS.ErrnoException) => {
      reject(
        new CommandError(
          [file, ...args].join(' '),
          null,
          e.code === 'ENOENT' ? `${file} not found: install it (scripts/install.sh does)` : e.message,
        ),
      );
    });
    child.on('close', (code) => {
      const res = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (code !== 0 && !opts.allowFailure) {
        reject(new CommandError([file, ...args].join(' '), code, res.stderr || res.stdout));
      } else resolve(res);
    });
    child.stdin.on('error', () => undefined); // the child may exit before reading all input
    child.stdin.end(opts.input ?? '');
  });
}
