DROP INDEX IF EXISTS idx_worker_metrics_rollup_bucket;
DROP INDEX IF EXISTS idx_worker_metrics_timestamp;
DROP TABLE IF EXISTS worker_metrics_rollup;
ALTER TABLE tasks DROP COLUMN IF EXISTS trace;
ALTER TABLE vms DROP COLUMN IF EXISTS phases;
