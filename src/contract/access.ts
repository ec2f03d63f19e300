/** API keys, join tokens and the audit log, as the API shows them: never a secret but once. */
import * as z from 'zod';
import { AUDIT_ACTOR_KINDS, AUDIT_OUTCOMES, ROLES } from '../domain/auth.ts';
import { JOIN_TOKEN_STATES } from '../domain/join.ts';
import { nullableTimestamp, timestamp, total } from './wire.ts';

export const apiKey = z
  .object({
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    created_at: timestamp,
    created_by: z.string().nullable(),
    last_used_at: nullableTimestamp,
    expires_at: nullableTimestamp,
    revoked_at: nullableTimestamp,
  })
  .meta({ id: 'ApiKey' });

/** A new key: the secret `token` is in this answer only. */
export const apiKeyCreated = apiKey.extend({ token: z.string() });

export const apiKeyList = z.object({ tokens: z.array(apiKey), total });

export const joinToken = z
  .object({
    id: z.string(),
    description: z.string(),
    max_uses: z.number().int(),
    uses: z.number().int(),
    expires_at: timestamp,
    created_by: z.string().nullable(),
    created_at: timestamp,
    revoked_at: nullableTimestamp,
    last_used_at: nullableTimestamp,
    last_worker_id: z.string().nullable(),
    state: z.enum(JOIN_TOKEN_STATES),
  })
  .meta({ id: 'JoinToken' });

/** A new join token: the secret `token` is in this answer only. */
export const joinTokenCreated = z.object({
  token: z.string(),
  id: z.string(),
  description: z.string(),
  max_uses: z.number().int(),
  expires_at: timestamp,
  ca_fingerprint: z.string(),
});

export const joinTokenList = z.object({ tokens: z.array(joinToken), total });

export const auditEntry = z
  .object({
    id: z.number().int(),
    at: timestamp,
    actor: z.string(),
    actor_kind: z.enum(AUDIT_ACTOR_KINDS),
    role: z.enum(ROLES).nullable(),
    action: z.string(),
    route: z.string(),
    target: z.string().nullable(),
    source: z.string().nullable(),
    outcome: z.enum(AUDIT_OUTCOMES),
    status: z.number().int(),
    details: z.record(z.string(), z.union([z.string(), z.number(), z.boolean(), z.null()])),
  })
  .meta({ id: 'AuditEntry' });

export const auditList = z.object({ entries: z.array(auditEntry), total });

/**
 * The caller as the server sees it: what a client (the web UI) shows and which controls it offers.
 * `kind` is `local` when authentication is off (a loopback listener only): every caller is admin.
 */
export const identity = z
  .object({
    kind: z.enum(['key', 'jwt', 'local']),
    id: z.string(),
    name: z.string(),
    role: z.enum(ROLES),
    auth_enabled: z.boolean(),
  })
  .meta({ id: 'Identity' });

/** What a sign-in page needs before it has a token: whether to ask, and how (OIDC, when configured). */
export const authConfig = z.object({
  auth_enabled: z.boolean(),
  oidc: z
    .object({
      /** The sign-in button's name. */
      name: z.string(),
      issuer: z.string(),
      authorization_endpoint: z.string(),
      client_id: z.string(),
      scopes: z.string(),
    })
    .nullable(),
});

/** RFC 7636 §4.1: 43-128 characters of the unreserved set. */
const PKCE_VERIFIER = /^[A-Za-z0-9._~-]{43,128}$/;

/** The code the provider gave the UI's callback, with the PKCE verifier the UI kept. */
export const oidcTokenBody = z
  .object({
    code: z.string().min(1).max(4096),
    code_verifier: z.string().regex(PKCE_VERIFIER, 'a PKCE code verifier is 43-128 characters of A-Z a-z 0-9 . _ ~ -'),
    redirect_uri: z.string().url().max(2048),
  })
  .strict();

/** The provider's token, verified as this server accepts it, and who it says the caller is. */
export const oidcToken = z.object({
  token: z.string(),
  expires_in: z.number().nullable(),
  identity,
});
