-- API keys (only the hash of each secret is stored) and the audit log of what callers did.

CREATE TABLE api_keys (
    id            text PRIMARY KEY,
    name          text NOT NULL,
    role          text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    hash          text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text,
    last_used_at  timestamptz,                         -- written at most once a minute (touchApiKey)
    expires_at    timestamptz,                         -- NULL: never; checked by the caller, not the store
    revoked_at    timestamptz                          -- set once, by revokeApiKey
);

-- A name is unique among live keys only: a revoked key's name can be reused.
CREATE UNIQUE INDEX idx_api_keys_name_live ON api_keys (name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL,
    actor_kind  text NOT NULL,
    role        text,
    action      text NOT NULL,
    route       text NOT NULL,
    target      text,
    source      text,
    outcome     text NOT NULL,
    status      integer NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb
);

CREATE INDEX idx_audit_log_at ON audit_log (at);
CREATE INDEX idx_audit_log_actor ON audit_log (actor);
CREATE INDEX idx_audit_log_action ON audit_log (action);
