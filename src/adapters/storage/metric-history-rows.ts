/**
 * The history of worker metrics: raw samples in `worker_metrics` for the raw retention, one
 * averaged row per worker and step in `worker_metrics_rollup` for the downsampled retention, and
 * timelines served from both at any step. Every replica may compact at once: the rollup inserts
 * only steps it has not written (ON CONFLICT DO NOTHING), and the deletes are by age.
 */
import type { WorkerMetricSample } from '../../domain/index.ts';
import type { HistoryPolicy, HistoryQuery, CompactionReport } from '../../ports/store.ts';
import type { SqlExecutor } from './sql-client.ts';
import { date, num, type Row } from './sql-values.ts';

const bucketOf = (column: string, stepParam: string) =>
  `to_timestamp(floor(extract(epoch FROM ${column}) / ${stepParam}::double precision) * ${stepParam}::double precision)`;

export async function compactWorkerMetrics(db: SqlExecutor, policy: HistoryPolicy): Promise<CompactionReport> {
  const step = Math.max(1, Math.round(policy.stepSeconds));
  // Only whole steps that ended, and only those after the last one this worker has: a step is
  // written once, from every raw sample it had.
  const rolled = await db.query<Row>(
    `INSERT INTO worker_metrics_rollup (worker_id, bucket, step_seconds, samples, cpu_usage, memory_usage, disk_usage,
                                        vm_count, tasks_processed, network_in_mb, network_out_mb)
     SELECT m.worker_id, ${bucketOf('m.timestamp', '$1')} AS bucket, $1::int, count(*), avg(m.cpu_usage),
            avg(m.memory_usage), avg(m.disk_usage), avg(m.vm_count), max(m.tasks_processed), avg(m.network_in_mb),
            avg(m.network_out_mb)
     FROM worker_metrics m
     WHERE m.timestamp < ${bucketOf('$2::timestamptz', '$1')}
       AND m.timestamp >= COALESCE(
             (SELECT max(r.bucket) FROM worker_metrics_rollup r WHERE r.worker_id = m.worker_id)
               + make_interval(secs => $1::double precision),
             '-infinity'::timestamptz)
     GROUP BY m.worker_id, bucket
     ON CONFLICT (worker_id, bucket) DO NOTHING
     RETURNING worker_id`,
    [step, policy.now],
  );
  const raw = await db.query<Row>('DELETE FROM worker_metrics WHERE timestamp < $1 RETURNING id', [
    new Date(policy.now.getTime() - policy.rawRetentionMs),
  ]);
  const old = await db.query<Row>('DELETE FROM worker_metrics_rollup WHERE bucket < $1 RETURNING worker_id', [
    new Date(policy.now.getTime() - policy.downsampledRetentionMs),
  ]);
  return { rolled_up: rolled.length, raw_deleted: raw.length, rollups_deleted: old.length };
}

/**
 * A worker's timeline from `since` to `until`, oldest first, one averaged sample per `stepSeconds`
 * (an empty step has no sample). Raw samples where they are kept; before the oldest of them, the
 * rollup rows (weighted by the samples each averaged), so nothing is counted twice.
 */
export async function workerMetricHistory(
  db: SqlExecutor,
  workerId: string,
  query: HistoryQuery,
): Promise<WorkerMetricSample[]> {
  const rows = await db.query<Row>(
    `WITH oldest_raw AS (
       SELECT COALESCE(min(timestamp), 'infinity'::timestamptz) AS at FROM worker_metrics WHERE worker_id = $1
     ), points AS (
       SELECT timestamp AS at, 1 AS weight, cpu_usage, memory_usage, disk_usage, vm_count::double precision AS vm_count,
              tasks_processed, network_in_mb, network_out_mb
       FROM worker_metrics WHERE worker_id = $1 AND timestamp >= $2 AND timestamp < $3
       UNION ALL
       SELECT r.bucket, r.samples, r.cpu_usage, r.memory_usage, r.disk_usage, r.vm_count, r.tasks_processed,
              r.network_in_mb, r.network_out_mb
       FROM worker_metrics_rollup r, oldest_raw o
       WHERE r.worker_id = $1 AND r.bucket >= $2 AND r.bucket < $3
         AND r.bucket + make_interval(secs => r.step_seconds) <= o.at
     )
     SELECT ${bucketOf('at', '$4')} AS bucket,
            sum(cpu_usage * weight) / sum(weight) AS cpu_usage,
            sum(memory_usage * weight) / sum(weight) AS memory_usage,
            sum(disk_usage * weight) / sum(weight) AS disk_usage,
            sum(vm_count * weight) / sum(weight) AS vm_count,
            max(tasks_processed) AS tasks_processed,
            sum(network_in_mb * weight) / sum(weight) AS network_in_mb,
            sum(network_out_mb * weight) / sum(weight) AS network_out_mb
     FROM points GROUP BY bucket ORDER BY bucket`,
    [workerId, query.since, query.until, query.stepSeconds],
  );
  return rows.map((row) => ({
    worker_id: workerId,
    timestamp: date(row.bucket),
    cpu_usage: num(row.cpu_usage),
    memory_usage: num(row.memory_usage),
    disk_usage: num(row.disk_usage),
    vm_count: Math.round(num(row.vm_count) * 100) / 100,
    tasks_processed: num(row.tasks_processed),
    network_in_mb: num(row.network_in_mb),
    network_out_mb: num(row.network_out_mb),
  }));
}
