-- Drain as a process with a deadline (not just a label), and cancellation of running tasks carried
-- across processes through the row.

ALTER TABLE workers
    ADD COLUMN drain_started_at  timestamptz,
    ADD COLUMN drain_deadline    timestamptz,          -- NULL while draining: no deadline
    ADD COLUMN drain_message     text,
    ADD COLUMN drain_enforced_at timestamptz,          -- set once, by the replica that stopped the VMs left at the deadline
    ADD COLUMN drained_at        timestamptz;          -- set once, when no VM is left on the worker

ALTER TABLE tasks
    ADD COLUMN cancel_requested_at timestamptz;

CREATE INDEX idx_tasks_cancel_requested ON tasks (worker_id) WHERE cancel_requested_at IS NOT NULL AND status = 'running';
