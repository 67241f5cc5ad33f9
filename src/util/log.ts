import { pino, type Logger as PinoLogger } from 'pino';

/** Structured JSON logs with levels (pino). One logger per process; children per concern. */
export type Logger = PinoLogger;
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export function createLogger(opts: { level?: LogLevel; name?: string } = {}): Logger {
  return pino({
    name: opts.name ?? 'weft',
    level: opts.level ?? 'info',
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
  });
}
