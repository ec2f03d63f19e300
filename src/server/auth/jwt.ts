/**
 * Bearer JWTs from an OIDC identity provider (keys from its JWKS URL) or, for small setups, signed
 * with a shared HMAC secret. Every token must name an allowed algorithm (so `alg: none` and
 * algorithm confusion are refused before any key is looked at), carry `exp`, and match the
 * configured issuer and audience; its role comes from a configurable claim. A refusal is always an
 * `unauthorized` AetheriumError whose message says why and never repeats the token; a key set that
 * cannot be fetched is `unavailable`, since retrying may work once the identity provider is back.
 */
import {
  createRemoteJWKSet,
  decodeProtectedHeader,
  errors,
  type JWTPayload,
  type JWTVerifyGetKey,
  type JWTVerifyOptions,
  jwtVerify,
} from 'jose';
import { AetheriumError, errorMessage } from '../../domain/index.ts';
import { ROLES, type Role } from './roles.ts';

export type { Role } from './roles.ts';

export interface JwtSettings {
  jwks_url: string | null;
  secret: string | null;
  issuer: string | null;
  audience: string | null;
  role_claim: string;
  /** clock tolerance seconds */
  clock_skew_seconds: number;
}

export interface JwtIdentity {
  kind: 'jwt';
  /** The `sub` claim. */
  id: string;
  /** `name` ?? `preferred_username` ?? `email` ?? `sub`. */
  name: string;
  role: Role;
  expires_at: Date | null;
}

/** Verified against the JWKS. */
export const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA'] as const;
/** Verified against the shared secret. */
export const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'] as const;
/** RFC 7518 §3.2: an HMAC key at least as long as the hash (256 bits for HS256). */
export const MIN_SECRET_BYTES = 32;
/** Longer than any sane bearer token; refused before parsing. */
const MAX_TOKEN_LENGTH = 16_384;
/** Header and payload are base64url JSON objects (`{"` is `eyJ`); the signature is empty only for `alg: none`. */
const JWT_SHAPE = /^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const JWKS_TIMEOUT_MS = 5_000;

const unauthorized = (message: string) => new AetheriumError('unauthorized', message);

export class JwtVerifier {
  readonly enabled: boolean;
  private readonly settings: JwtSettings;
  private readonly algorithms: string[];
  private readonly jwks: JWTVerifyGetKey | null;
  private readonly secret: Uint8Array | null;
  private readonly jwksLabel: string;

  constructor(settings: JwtSettings) {
    this.settings = settings;
    this.secret = settings.secret === null ? null : new TextEncoder().encode(settings.secret);
    if (this.secret !== null && this.secret.byteLength < MIN_SECRET_BYTES) {
      throw new AetheriumError('validation_failed', `the JWT secret must be at least ${MIN_SECRET_BYTES} bytes long`);
    }
    let url: URL | null = null;
    if (settings.jwks_url !== null) {
      try {
        url = new URL(settings.jwks_url);
      } catch {
        throw new AetheriumError('validation_failed', 'the JWKS URL is not a valid URL');
      }
    }
    // Never log credentials that may sit in the URL.
    this.jwksLabel = url === null ? '' : `${url.origin}${url.pathname}`;
    this.jwks = url === null ? null : createRemoteJWKSet(url, { timeoutDuration: JWKS_TIMEOUT_MS });
    this.algorithms = [...(this.jwks ? ASYMMETRIC_ALGORITHMS : []), ...(this.secret ? HMAC_ALGORITHMS : [])];
    this.enabled = this.algorithms.length > 0;
  }

  /** Looks like a JWT (three base64url parts)? Says nothing about whether it verifies. */
  static looksLikeJwt(token: string): boolean {
    return token.length <= MAX_TOKEN_LENGTH && JWT_SHAPE.test(token);
  }

  async verify(token: string): Promise<JwtIdentity> {
    if (!this.enabled) throw unauthorized('JWT authentication is not configured');
    if (token.length > MAX_TOKEN_LENGTH) throw unauthorized('the token is too long');
    if (!JwtVerifier.looksLikeJwt(token)) throw unauthorized('the token is not a well-formed JWT');

    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      throw unauthorized("the token's header is not valid base64url JSON");
    }
    if (typeof alg !== 'string' || alg === '') throw unauthorized('the token names no algorithm (alg)');
    if (!this.algorithms.includes(alg)) {
      const shown = /^[A-Za-z0-9_-]{1,16}$/.test(alg) ? `${alg} ` : '';
      throw unauthorized(`the token's algorithm ${shown}is not allowed (allowed: ${this.algorithms.join(', ')})`);
    }

    const options: JWTVerifyOptions = {
      algorithms: this.algorithms,
      requiredClaims: ['exp'],
      clockTolerance: this.settings.clock_skew_seconds,
    };
    if (this.settings.issuer !== null) options.issuer = this.settings.issuer;
    if (this.settings.audience !== null) options.audience = this.settings.audience;

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.keyFor, options));
    } catch (err) {
      throw this.refusal(err);
    }
    return this.identity(payload);
  }

  /** HMAC algorithms only ever meet the secret, asymmetric ones only the JWKS: no confusion between them. */
  private readonly keyFor: JWTVerifyGetKey = async (header, token) => {
    const alg = header.alg ?? '';
    if ((HMAC_ALGORITHMS as readonly string[]).includes(alg)) {
      if (this.secret === null) throw unauthorized(`the token's algorithm ${alg} is not allowed`);
      return this.secret;
    }
    if (this.jwks === null) throw unauthorized(`the token's algorithm ${alg} is not allowed`);
    try {
      return await this.jwks(header, token);
    } catch (err) {
      // These say the token does not fit the key set; anything else is the key set failing us.
      if (
        err instanceof errors.JWKSNoMatchingKey ||
        err instanceof errors.JWKSMultipleMatchingKeys ||
        err instanceof errors.JOSENotSupported
      ) {
        throw err;
      }
      throw new AetheriumError(
        'unavailable',
        `the identity provider's key set at ${this.jwksLabel} cannot be fetched: ${describeFetchError(err)}`,
      );
    }
  };

  private refusal(err: unknown): AetheriumError {
    if (err instanceof AetheriumError) return err;
    if (err instanceof errors.JWTExpired) {
      return unauthorized(err.claim === 'exp' ? 'the token has expired' : 'the token is too old');
    }
    if (err instanceof errors.JWTClaimValidationFailed) return unauthorized(this.claimMessage(err));
    if (err instanceof errors.JWSSignatureVerificationFailed) {
      return unauthorized("the token's signature does not verify");
    }
    if (err instanceof errors.JOSEAlgNotAllowed) return unauthorized("the token's algorithm is not allowed");
    if (err instanceof errors.JWKSNoMatchingKey) {
      return unauthorized("no key in the identity provider's key set matches the token's kid and algorithm");
    }
    if (err instanceof errors.JWKSMultipleMatchingKeys) {
      return unauthorized("several keys in the identity provider's key set match; the token must name its kid");
    }
    if (err instanceof errors.JOSENotSupported) return unauthorized('the token uses an unsupported algorithm or key');
    // jose's own messages are fixed strings that never quote the token.
    if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) {
      return unauthorized(`the token is not a well-formed JWT: ${err.message}`);
    }
    return unauthorized('the token cannot be verified');
  }

  private claimMessage(err: InstanceType<typeof errors.JWTClaimValidationFailed>): string {
    if (err.reason === 'missing') return `the token carries no ${err.claim} claim`;
    switch (err.claim) {
      case 'aud':
        return `the token's audience is not ${this.settings.audience}`;
      case 'iss':
        return `the token's issuer is not ${this.settings.issuer}`;
      case 'nbf':
        return 'the token is not valid yet (nbf)';
      case 'iat':
        return "the token's issue time (iat) is in the future";
      default:
        return `the token's ${err.claim} claim is invalid`;
    }
  }

  private identity(payload: JWTPayload): JwtIdentity {
    const sub = payload.sub;
    if (typeof sub !== 'string' || sub === '') throw unauthorized('the token carries no subject (sub)');
    const claim = this.settings.role_claim;
    const value = claimAt(payload, claim);
    if (value === undefined || value === null) throw unauthorized(`the token carries no role in claim ${claim}`);
    const role = highestRole(value);
    if (role === null) {
      throw unauthorized(`the token's claim ${claim} names no known role (known: ${ROLES.join(', ')})`);
    }
    const name = [payload.name, payload.preferred_username, payload.email].find(
      (v): v is string => typeof v === 'string' && v !== '',
    );
    return {
      kind: 'jwt',
      id: sub,
      name: name ?? sub,
      role,
      expires_at: typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : null,
    };
  }
}

/**
 * The claim named `path`: the top-level claim of that exact name if there is one (namespaced claims
 * such as `https://example.com/roles` contain dots), otherwise the dotted path `realm_access.roles`.
 */
function claimAt(payload: JWTPayload, path: string): unknown {
  if (Object.hasOwn(payload, path)) return payload[path];
  let node: unknown = payload;
  for (const part of path.split('.')) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, part)) {
      return undefined;
    }
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

/** The highest known role a string or array claim names; unknown names are ignored. */
function highestRole(value: unknown): Role | null {
  const names = Array.isArray(value) ? value : [value];
  let best = -1;
  for (const name of names) {
    if (typeof name !== 'string') continue;
    best = Math.max(best, (ROLES as readonly string[]).indexOf(name));
  }
  return best < 0 ? null : ROLES[best]!;
}

function describeFetchError(err: unknown): string {
  if (err instanceof errors.JWKSTimeout) return `no answer within ${JWKS_TIMEOUT_MS} ms`;
  const cause = err instanceof Error ? err.cause : undefined;
  const code = typeof cause === 'object' && cause !== null && 'code' in cause ? cause.code : undefined;
  return typeof code === 'string' ? `${errorMessage(err)} (${code})` : errorMessage(err);
}
