-- VMs, the tasks that act on them, and the commands run inside them.

CREATE TABLE vms (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL
                CHECK (status IN ('created', 'starting', 'running', 'stopping', 'stopped', 'failed')),
    driver      text NULL,
    worker_id   text NULL,
    zone        text NULL,
    labels      jsonb NOT NULL DEFAULT '{}'::jsonb,
    image       text NULL,
    vcpus       integer NOT NULL CHECK (vcpus >= 0),
    memory_mb   integer NOT NULL CHECK (memory_mb >= 0),
    disk_gb     integer NOT NULL CHECK (disk_gb >= 0),
    error       text NULL,
    -- True while the VM holds capacity on its worker (see placeTask / releaseVm).
    reserved    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    deleted_at  timestamptz NULL
);

-- A name is unique among live VMs only: a deleted VM's name can be reused.
CREATE UNIQUE INDEX idx_vms_name_live ON vms (name) WHERE deleted_at IS NULL;

CREATE TABLE tasks (
    id            uuid PRIMARY KEY,
    type          text NOT NULL
                  CHECK (type IN ('vm:create', 'vm:start', 'vm:stop', 'vm:delete', 'vm:execute')),
    status        text NOT NULL
                  CHECK (status IN ('pending', 'scheduled', 'running', 'completed', 'failed', 'cancelled')),
    vm_id         uuid NULL REFERENCES vms (id) ON DELETE SET NULL,
    worker_id     text NULL,
    payload       jsonb NOT NULL DEFAULT '{}'::jsonb,
    result        jsonb NULL,
    error         text NULL,
    placement     jsonb NULL,
    retry_count   integer NOT NULL DEFAULT 0 CHECK (retry_count >= 0),
    max_retries   integer NOT NULL DEFAULT 3 CHECK (max_retries >= 0),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz NULL,
    completed_at  timestamptz NULL
);

CREATE TABLE executions (
    id            uuid PRIMARY KEY,
    vm_id         uuid NOT NULL REFERENCES vms (id) ON DELETE CASCADE,
    task_id       uuid NULL REFERENCES tasks (id) ON DELETE SET NULL,
    command       text NOT NULL,
    args          jsonb NOT NULL DEFAULT '[]'::jsonb,
    env           jsonb NOT NULL DEFAULT '{}'::jsonb,
    exit_code     integer NOT NULL,
    stdout        text NOT NULL DEFAULT '',
    stderr        text NOT NULL DEFAULT '',
    timed_out     boolean NOT NULL DEFAULT false,
    started_at    timestamptz NOT NULL,
    completed_at  timestamptz NOT NULL,
    duration_ms   integer NOT NULL CHECK (duration_ms >= 0)
);
