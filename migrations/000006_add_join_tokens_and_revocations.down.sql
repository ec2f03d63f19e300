DROP TABLE IF EXISTS worker_cert_revocations;
DROP TABLE IF EXISTS join_tokens;
