DROP INDEX IF EXISTS idx_vms_unknown;
-- The statuses that did not exist before: an unknown VM is taken as running, a lost one as failed.
UPDATE vms SET status = 'running' WHERE status = 'unknown';
UPDATE vms SET status = 'failed' WHERE status = 'lost';
ALTER TABLE vms DROP CONSTRAINT IF EXISTS vms_status_check;
ALTER TABLE vms ADD CONSTRAINT vms_status_check
    CHECK (status IN ('created', 'starting', 'running', 'stopping', 'stopped', 'failed'));
