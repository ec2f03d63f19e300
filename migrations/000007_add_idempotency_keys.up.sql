-- Idempotency keys of POST /vms: the same key from the same caller within its TTL answers with the
-- VM and task recorded for it, never a second VM. The record is written first, with the VM's and the
-- task's ids chosen up front; the create that follows writes them only if absent.

CREATE TABLE idempotency_keys (
    scope        text NOT NULL,                  -- the caller: `key:<id>`, `jwt:<subject>` or `local`
    key          text NOT NULL,                  -- the Idempotency-Key header
    fingerprint  text NOT NULL,                  -- sha256 of the canonical request body
    -- No foreign keys: the record exists before its VM and task (and a crash may leave it so).
    vm_id        uuid NOT NULL,
    task_id      uuid NOT NULL,
    created_at   timestamptz NOT NULL,
    -- Live while now < expires_at; a claim after it replaces the record, the reaper prunes it.
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (scope, key)
);

CREATE INDEX idx_idempotency_keys_expires_at ON idempotency_keys (expires_at);
