DROP INDEX IF EXISTS idx_audit_log_action;
DROP INDEX IF EXISTS idx_audit_log_actor;
DROP INDEX IF EXISTS idx_audit_log_at;
DROP TABLE IF EXISTS audit_log;

DROP INDEX IF EXISTS idx_api_keys_name_live;
DROP TABLE IF EXISTS api_keys;
