/**
 * Times in query strings, as operators write them: a duration back from now (`10m`, `24h`) or an
 * RFC 3339 time. Used by `?since=` on worker logs and worker metrics.
 */
import { parseDuration } from '../../config/duration.ts';
import { invalid } from '../../domain/index.ts';

/** Epoch ms, or null when absent. */
export function timeOf(name: string, text: string | undefined, now = Date.now()): number | null {
  if (text === undefined || text === '') return null;
  const back = parseDuration(text);
  if (back !== null) return now - back;
  const at = Date.parse(text);
  if (Number.isNaN(at))
    throw invalid(`${name}: expected a duration such as "10m" or an RFC 3339 time, got ${JSON.stringify(text)}`);
  return at;
}

export const sinceOf = (text: string | undefined, now = Date.now()) => timeOf('since', text, now);

/** A step of at least a second, in whole seconds. */
export function stepOf(text: string | undefined): number | null {
  if (text === undefined || text === '') return null;
  const ms = parseDuration(text);
  if (ms === null || ms < 1000)
    throw invalid(`step: expected a duration of at least 1s such as "30s" or "5m", got ${JSON.stringify(text)}`);
  return Math.round(ms / 1000);
}
