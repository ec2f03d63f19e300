/**
 * Who may call the API: API keys with a role, and the audit log of what callers did. The roles are
 * ordered: each one may do everything the one below it may.
 */

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

/** True when `have` grants at least what `need` requires (viewer < operator < admin). */
export function roleAtLeast(have: Role, need: Role): boolean {
  return ROLES.indexOf(have) >= ROLES.indexOf(need);
}

/** An API key as stored: never the secret, only its hash. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  role: Role;
  hash: string;
  created_at: Date;
  created_by: string | null;
  last_used_at: Date | null;
  /** Checked by the caller: the store returns expired keys like any other. */
  expires_at: Date | null;
  revoked_at: Date | null;
}

export const AUDIT_ACTOR_KINDS = ['key', 'jwt', 'anonymous', 'bootstrap', 'certificate'] as const;
export const AUDIT_OUTCOMES = ['allowed', 'denied', 'failed', 'succeeded'] as const;

/** One line of the audit log. */
export interface AuditEntry {
  id: number;
  at: Date;
  actor: string;
  actor_kind: (typeof AUDIT_ACTOR_KINDS)[number];
  role: Role | null;
  action: string;
  route: string;
  target: string | null;
  source: string | null;
  outcome: (typeof AUDIT_OUTCOMES)[number];
  status: number;
  details: Record<string, string | number | boolean | null>;
}

/** Which audit entries to list: newest first, `limit` (default 100, at most 1000) at a time, before `before_id`. */
export interface AuditFilter {
  actor?: string;
  action?: string;
  outcome?: AuditEntry['outcome'];
  since?: Date;
  limit?: number;
  before_id?: number;
}
