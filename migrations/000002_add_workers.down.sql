DROP INDEX IF EXISTS idx_executions_vm_started_at;
DROP INDEX IF EXISTS idx_tasks_vm_id;
DROP INDEX IF EXISTS idx_tasks_status_updated_at;
DROP INDEX IF EXISTS idx_tasks_status_created_at;
DROP INDEX IF EXISTS idx_tasks_worker_id;
DROP INDEX IF EXISTS idx_vms_worker_id;

ALTER TABLE tasks DROP CONSTRAINT IF EXISTS tasks_worker_id_fkey;
ALTER TABLE vms DROP CONSTRAINT IF EXISTS vms_worker_id_fkey;

DROP INDEX IF EXISTS idx_worker_metrics_worker_timestamp;
DROP TABLE IF EXISTS worker_metrics;

DROP INDEX IF EXISTS idx_workers_capabilities;
DROP INDEX IF EXISTS idx_workers_labels;
DROP INDEX IF EXISTS idx_workers_last_seen;
DROP INDEX IF EXISTS idx_workers_zone;
DROP INDEX IF EXISTS idx_workers_status;
DROP TABLE IF EXISTS workers;
