/** One pino logger per process; components take children named after themselves. */
import { type LoggerOptions, pino } from 'pino';
import { logContext } from '../observability/trace-context.ts';
import type { Logger } from '../ports/logger.ts';

export type { Logger };

/**
 * Fields that may hold a secret are censored wherever they appear in a log line: credentials in
 * headers, tokens, passwords, and the URLs of the engines (which may carry a password).
 */
export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  'req.headers.authorization',
  'req.headers["sec-websocket-protocol"]',
  'token',
  '*.token',
  'password',
  '*.password',
  'secret',
  '*.secret',
  'url',
  '*.url',
];

export function loggerOptions(options: { level: string; name?: string }): LoggerOptions {
  return {
    name: options.name ?? 'aetherium',
    level: options.level,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    // The request, trace and task of the work in progress, on every line it writes.
    mixin: logContext,
  };
}

/**
 * `tee`: a second destination that gets every line as JSON (a worker's log buffer, served to
 * `aetherium workers logs`), whatever the first one prints.
 */
export function createLogger(
  options: { level: string; pretty: boolean; name?: string },
  tee?: NodeJS.WritableStream,
): Logger {
  const pretty = {
    target: 'pino-pretty',
    options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
  };
  if (tee) {
    // The buffer keeps info lines even when the console shows only warnings: it is what
    // `workers logs` shows, and a quiet console should not leave it empty.
    const out = options.pretty ? pino.transport(pretty) : pino.destination(1);
    const values = pino.levels.values as Record<string, number>;
    const quiet = options.level === 'silent' || (values[options.level] ?? 0) > (values.info ?? 30);
    const teeLevel = quiet ? 'info' : options.level;
    return pino(
      { ...loggerOptions(options), level: teeLevel },
      pino.multistream([
        { stream: out, level: (options.level === 'silent' ? 'fatal' : options.level) as never },
        { stream: tee, level: teeLevel as never },
      ]),
    );
  }
  return pino({ ...loggerOptions(options), ...(options.pretty ? { transport: pretty } : {}) });
}

export const silentLogger: Logger = pino({ level: 'silent' });
