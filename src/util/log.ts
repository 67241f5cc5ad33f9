import { pino, type Logger as PinoLogger } from 'pino';

/**
 * Structured JSON logs with levels (pino). One logger per process; children per concern.
 *
 * Written synchronously: weft logs events, not packets, so the cost is a write per line, and in
 * exchange a line is in the file before the answer it describes leaves (an operator, or a test,
 * reading agent.log after a CNI call finds it), and the last lines before a crash or SIGKILL are kept.
 */
export type Logger = PinoLogger;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export function createLogger(opts: { level?: LogLevel; name?: string } = {}): Logger {
  return pino(
    {
      name: opts.name ?? 'weft',
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 1, sync: true }),
  );
}
