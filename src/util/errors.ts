/**
 * Errors that reach a user. Every one names the cause and, where there is one, the fix, so that the
 * CLI can print a single line instead of a stack trace.
 */
export class WeftError extends Error {
  /** What the user can do about it; printed after the message. */
  readonly hint: string | undefined;
  constructor(message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.hint = options.hint;
  }
  /** One line: "message (hint)". */
  oneLine(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

/** A configuration value is invalid; `field` names the offending key as the user wrote it. */
export class ConfigError extends WeftError {
  readonly field: string;
  constructor(field: string, problem: string, hint?: string) {
    super(`${field}: ${problem}`, hint === undefined ? {} : { hint });
    this.field = field;
  }
}

/** A command (ip, bridge, nft, …) failed. Carries the exact command line and what it printed. */
export class CommandError extends WeftError {
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string) {
    super(`${command}: ${stderr.trim() || `exited with ${String(exitCode)}`}`);
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Text for any thrown value, without a stack trace. */
export function describeError(err: unknown): string {
  if (err instanceof WeftError) return err.oneLine();
  if (err instanceof Error) return err.message;
  return String(err);
}
