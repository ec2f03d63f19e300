/**
 * Joining: how a new worker gets its certificate. An admin creates a join token; the worker sends
 * it with a CSR to the agent port; the control plane checks and consumes the token and signs.
 *
 * A token is `aetherium-join.<id>.<secret>.<CA fingerprint hex>`. The id finds the record without a
 * scan; the secret (256 random bits, base64url) is stored only as its scrypt hash; the last part is
 * the SHA-256 of the control plane's CA certificate, which the worker pins before it trusts the agent
 * port, like kubeadm's discovery hash. The format and its parser live here, not in the server, so
 * that the worker side can read a token without depending on the control plane.
 */
import { AetheriumError } from './errors.ts';

export const JOIN_TOKEN_PREFIX = 'aetherium-join';

/** A join token's uses and lifetime: the defaults, and the bounds a request may ask for. */
export const JOIN_DEFAULT_USES = 1;
export const JOIN_MAX_USES = 1000;
export const JOIN_DEFAULT_TTL_MS = 3_600_000;
export const JOIN_MIN_TTL_MS = 1000;
export const JOIN_MAX_TTL_MS = 30 * 86_400_000;

/** A join token as stored: never the secret, only its hash. */
export interface JoinTokenRecord {
  id: string;
  secret_hash: string;
  /** What the admin said it is for; '' when nothing. */
  description: string;
  max_uses: number;
  uses: number;
  expires_at: Date;
  created_by: string | null;
  created_at: Date;
  revoked_at: Date | null;
  last_used_at: Date | null;
  /** The worker the last successful join admitted. */
  last_worker_id: string | null;
}

export const JOIN_TOKEN_STATES = ['active', 'expired', 'used_up', 'revoked'] as const;
export type JoinTokenState = (typeof JOIN_TOKEN_STATES)[number];

/** What a token can still do at `now`; revoked wins over used up, which wins over expired. */
export function joinTokenState(
  token: Pick<JoinTokenRecord, 'revoked_at' | 'uses' | 'max_uses' | 'expires_at'>,
  now: Date,
): JoinTokenState {
  if (token.revoked_at !== null) return 'revoked';
  if (token.uses >= token.max_uses) return 'used_up';
  if (token.expires_at.getTime() <= now.getTime()) return 'expired';
  return 'active';
}

/** The parts of a join token. `caFingerprint` is `sha256:<64 lowercase hex digits>`. */
export interface JoinTokenParts {
  id: string;
  secret: string;
  caFingerprint: string;
}

const ID = /^[0-9a-f]{16}$/;
const SECRET = /^[A-Za-z0-9_-]{43}$/;
const FINGERPRINT_HEX = /^[0-9a-f]{64}$/;
const TOKEN_SHAPE = /^aetherium-join\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})\.([0-9a-fA-F]{64})$/;

const malformed = (why: string) =>
  // Never the token itself in the message: this text may reach a log.
  new AetheriumError(
    'validation_failed',
    `${why}: a join token looks like ${JOIN_TOKEN_PREFIX}.<id>.<secret>.<CA fingerprint> (from \`aetherium tokens create --join\`)`,
  );

/**
 * `sha256:<hex>` in its one canonical form: lowercase, without the colons that Node's
 * `X509Certificate.fingerprint256` and `openssl x509 -fingerprint` put between bytes.
 */
export function normalizeCaFingerprint(fingerprint: string): string {
  const match = /^sha256:([0-9a-fA-F:]+)$/i.exec(fingerprint.trim());
  const hex = match?.[1]?.replaceAll(':', '').toLowerCase();
  if (!hex || !FINGERPRINT_HEX.test(hex)) {
    throw new AetheriumError(
      'validation_failed',
      `${JSON.stringify(fingerprint)} is not a CA fingerprint: expected sha256: and 64 hex digits`,
    );
  }
  return `sha256:${hex}`;
}

export function formatJoinToken(parts: JoinTokenParts): string {
  if (!ID.test(parts.id)) throw malformed('the id is not 16 hex digits');
  if (!SECRET.test(parts.secret)) throw malformed('the secret is not 43 base64url characters');
  const hex = normalizeCaFingerprint(parts.caFingerprint).slice('sha256:'.length);
  return `${JOIN_TOKEN_PREFIX}.${parts.id}.${parts.secret}.${hex}`;
}

/** The parts of a token, or a `validation_failed` AetheriumError that says what is wrong (never the token). */
export function parseJoinToken(token: string): JoinTokenParts {
  const text = token.trim();
  const match = TOKEN_SHAPE.exec(text);
  if (match) return { id: match[1]!, secret: match[2]!, caFingerprint: `sha256:${match[3]!.toLowerCase()}` };
  if (/^ae_[0-9a-f]{16}_/.test(text)) throw malformed('this is an API key, not a join token');
  if (!text.startsWith(`${JOIN_TOKEN_PREFIX}.`)) throw malformed(`this does not start with ${JOIN_TOKEN_PREFIX}.`);
  throw malformed(`this token has ${text.split('.').length} dot-separated parts, or one of them is cut short`);
}
