-- Workers (hosts running the agent), their metric history, and the indexes the store's queries use.

CREATE TABLE workers (
    id              text PRIMARY KEY,
    hostname        text NOT NULL,
    address         text NOT NULL,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'draining', 'offline')),
    eligible        boolean NOT NULL DEFAULT true,
    last_seen       timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz NOT NULL DEFAULT now(),
    zone            text NOT NULL DEFAULT '',
    labels          jsonb NOT NULL DEFAULT '{}'::jsonb,
    capabilities    jsonb NOT NULL DEFAULT '[]'::jsonb,
    cpu_cores       integer NOT NULL CHECK (cpu_cores >= 0),
    memory_mb       bigint NOT NULL CHECK (memory_mb >= 0),
    disk_gb         bigint NOT NULL CHECK (disk_gb >= 0),
    -- What the scheduler has promised away; changed only by placeTask / releaseVm / unplaceTask.
    used_cpu_cores  integer NOT NULL DEFAULT 0 CHECK (used_cpu_cores >= 0),
    used_memory_mb  bigint NOT NULL DEFAULT 0 CHECK (used_memory_mb >= 0),
    used_disk_gb    bigint NOT NULL DEFAULT 0 CHECK (used_disk_gb >= 0),
    vm_count        integer NOT NULL DEFAULT 0 CHECK (vm_count >= 0),
    max_vms         integer NOT NULL DEFAULT 100 CHECK (max_vms >= 0),
    ttl_seconds     integer NOT NULL DEFAULT 30 CHECK (ttl_seconds > 0),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX idx_workers_status ON workers (status);
CREATE INDEX idx_workers_zone ON workers (zone);
CREATE INDEX idx_workers_last_seen ON workers (last_seen);
CREATE INDEX idx_workers_labels ON workers USING GIN (labels);
CREATE INDEX idx_workers_capabilities ON workers USING GIN (capabilities);

CREATE TABLE worker_metrics (
    id               bigserial PRIMARY KEY,
    worker_id        text NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    timestamp        timestamptz NOT NULL,
    cpu_usage        double precision NOT NULL,
    memory_usage     double precision NOT NULL,
    disk_usage       double precision NOT NULL,
    vm_count         integer NOT NULL DEFAULT 0,
    tasks_processed  bigint NOT NULL DEFAULT 0,
    network_in_mb    double precision NOT NULL DEFAULT 0,
    network_out_mb   double precision NOT NULL DEFAULT 0
);

CREATE INDEX idx_worker_metrics_worker_timestamp ON worker_metrics (worker_id, timestamp);

ALTER TABLE vms
    ADD CONSTRAINT vms_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES workers (id) ON DELETE SET NULL;
ALTER TABLE tasks
    ADD CONSTRAINT tasks_worker_id_fkey FOREIGN KEY (worker_id) REFERENCES workers (id) ON DELETE SET NULL;

CREATE INDEX idx_vms_worker_id ON vms (worker_id);
CREATE INDEX idx_tasks_worker_id ON tasks (worker_id);
CREATE INDEX idx_tasks_status_created_at ON tasks (status, created_at);
CREATE INDEX idx_tasks_status_updated_at ON tasks (status, updated_at);
CREATE INDEX idx_tasks_vm_id ON tasks (vm_id);
CREATE INDEX idx_executions_vm_started_at ON executions (vm_id, started_at);
