-- Observability: the boot waterfall of each VM, the trace a task carries from the API call that made
-- it, and the downsampled history of worker metrics.

-- When each phase of a VM's start happened: {"accepted": "…", "placed": "…", "delivered": "…",
-- "driver_started": "…", "agent_ready": "…", "running": "…"} (ISO 8601). A phase reached again (a
-- create placed a second time) keeps its latest time.
ALTER TABLE vms ADD COLUMN phases jsonb NOT NULL DEFAULT '{}'::jsonb;

-- The request that made the task: {"request_id": "…", "traceparent": "00-…"} (W3C trace context),
-- so every log line about the work, on any process, can name it.
ALTER TABLE tasks ADD COLUMN trace jsonb;

-- worker_metrics holds raw samples for metrics.history.raw_retention; older ones survive here as one
-- averaged row per worker and step (metrics.history.downsample_step), for downsampled_retention.
CREATE TABLE worker_metrics_rollup (
    worker_id        text NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    bucket           timestamptz NOT NULL,           -- the start of the step
    step_seconds     integer NOT NULL,
    samples          integer NOT NULL,               -- raw samples averaged into this row
    cpu_usage        double precision NOT NULL,
    memory_usage     double precision NOT NULL,
    disk_usage       double precision NOT NULL,
    vm_count         double precision NOT NULL,
    tasks_processed  bigint NOT NULL,                -- the highest count in the step (it is a counter)
    network_in_mb    double precision NOT NULL,
    network_out_mb   double precision NOT NULL,
    PRIMARY KEY (worker_id, bucket)
);

CREATE INDEX idx_worker_metrics_timestamp ON worker_metrics (timestamp);
CREATE INDEX idx_worker_metrics_rollup_bucket ON worker_metrics_rollup (bucket);
