/**
 * Keeps the worker metrics history bounded (`metrics.history`): every `compact_interval`, whole
 * steps of raw samples are averaged into the downsampled history, and what is past its retention is
 * dropped. Every replica runs it; the store's compaction is idempotent, so two at once do no harm.
 */
import type { Config } from '../../config/schema.ts';
import { Periodic } from '../../lifecycle/periodic.ts';
import type { Logger } from '../../ports/logger.ts';
import type { Store } from '../../ports/store.ts';

export function historyCompactor(
  store: Store,
  history: Config['metrics']['history'],
  log: Logger,
  now: () => Date = () => new Date(),
): Periodic {
  const compact = async () => {
    const report = await store.compactWorkerMetrics({
      now: now(),
      rawRetentionMs: history.raw_retention,
      downsampledRetentionMs: history.downsampled_retention,
      stepSeconds: Math.max(1, Math.round(history.downsample_step / 1000)),
    });
    if (report.rolled_up || report.raw_deleted || report.rollups_deleted)
      log.debug(report, 'worker metrics history compacted');
  };
  return new Periodic('metrics history', compact, {
    intervalMs: history.compact_interval,
    onError: (err) => log.warn({ err }, 'compacting the worker metrics history failed; trying again next interval'),
  });
}
