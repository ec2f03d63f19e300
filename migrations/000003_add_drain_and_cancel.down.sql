DROP INDEX IF EXISTS idx_tasks_cancel_requested;
ALTER TABLE tasks DROP COLUMN IF EXISTS cancel_requested_at;
ALTER TABLE workers
    DROP COLUMN IF EXISTS drained_at,
    DROP COLUMN IF EXISTS drain_enforced_at,
    DROP COLUMN IF EXISTS drain_message,
    DROP COLUMN IF EXISTS drain_deadline,
    DROP COLUMN IF EXISTS drain_started_at;
