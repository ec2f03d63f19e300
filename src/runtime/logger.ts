/** One pino logger per process; components take children named after themselves. */
import { pino } from 'pino';
import type { Logger } from '../ports/logger.ts';

export type { Logger };

export function createLogger(options: { level: string; pretty: boolean; name?: string }): Logger {
  return pino({
    name: options.name ?? 'aetherium',
    level: options.level,
    ...(options.pretty
      ? {
          transport: {
            target: 'pino-pretty',
            options: { colorize: true, translateTime: 'HH:MM:ss.l', ignore: 'pid,hostname' },
          },
        }
      : {}),
  });
}

export const silentLogger: Logger = pino({ level: 'silent' });
