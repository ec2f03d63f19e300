-- A VM whose worker went away is `unknown`, and `lost` once it stayed away past worker.lost_after.
-- The unknown VMs are what the reaper looks at on every pass: a partial index keeps that cheap.

ALTER TABLE vms DROP CONSTRAINT IF EXISTS vms_status_check;
ALTER TABLE vms ADD CONSTRAINT vms_status_check
    CHECK (status IN ('created', 'starting', 'running', 'stopping', 'stopped', 'failed', 'unknown', 'lost'));
CREATE INDEX IF NOT EXISTS idx_vms_unknown ON vms (worker_id) WHERE status = 'unknown' AND deleted_at IS NULL;
