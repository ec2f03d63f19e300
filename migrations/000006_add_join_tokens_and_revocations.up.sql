-- Joining and revocation on the agent channel: join tokens (only the hash of each secret is stored)
-- with which new workers get their certificates, and per-worker cut-offs before which a worker's
-- certificates are refused.

CREATE TABLE join_tokens (
    id              text PRIMARY KEY,
    secret_hash     text NOT NULL,
    description     text NOT NULL DEFAULT '',
    max_uses        integer NOT NULL CHECK (max_uses >= 1),
    -- Only useJoinToken moves it, with one conditional UPDATE: the CHECK is a second line of defence.
    uses            integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    expires_at      timestamptz NOT NULL,
    created_by      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    revoked_at      timestamptz,                        -- set once, by revokeJoinToken
    last_used_at    timestamptz,
    last_worker_id  text                                -- the worker the last join admitted
);

-- No foreign key to workers: a worker that joined may not have registered yet, and a revocation
-- must hold whatever the workers table says.
CREATE TABLE worker_cert_revocations (
    worker_id       text PRIMARY KEY,
    -- Certificates of this worker issued at or before this moment are refused; it only moves later.
    revoked_before  timestamptz NOT NULL,
    revoked_by      text,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
