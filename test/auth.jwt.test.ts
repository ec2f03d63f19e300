/**
 * JwtVerifier against real keys: a JWKS served over HTTP on 127.0.0.1, and the shared-secret mode.
 * Every refusal must be `unauthorized` (or `unavailable` when the key set cannot be fetched) and
 * must never quote the token.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AetheriumError } from '../src/domain/index.ts';
import { type JwtSettings, JwtVerifier } from '../src/server/auth/jwt.ts';

const ISSUER = 'https://idp.example.test/realms/aetherium';
const AUDIENCE = 'aetherium-api';
const KID = 'key-1';
const SECRET = 'a-shared-secret-that-is-long-enough-for-hs256';

let server: Server;
let jwksUrl: string;
let jwksHits = 0;
let privateKey: CryptoKey;
let publicKey: CryptoKey;
let otherPrivateKey: CryptoKey;

function listen(s: Server): Promise<string> {
  return new Promise((resolve) =>
    s.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(s.address() as AddressInfo).port}`)),
  );
}

function close(s: Server): Promise<void> {
  return new Promise((resolve, reject) => s.close((err) => (err ? reject(err) : resolve())));
}

beforeAll(async () => {
  ({ privateKey, publicKey } = await generateKeyPair('RS256'));
  ({ privateKey: otherPrivateKey } = await generateKeyPair('RS256'));
  const jwk = { ...(await exportJWK(publicKey)), kid: KID, alg: 'RS256', use: 'sig' };
  const body = JSON.stringify({ keys: [jwk] });
  server = createServer((req, res) => {
    if (req.url === '/jwks') {
      jwksHits++;
      res.writeHead(200, { 'content-type': 'application/json' }).end(body);
    } else if (req.url === '/broken') {
      res.writeHead(500).end('boom');
    } else {
      res.writeHead(404).end();
    }
  });
  jwksUrl = `${await listen(server)}/jwks`;
});

afterAll(async () => {
  await close(server);
});

function settings(overrides: Partial<JwtSettings> = {}): JwtSettings {
  return {
    jwks_url: jwksUrl,
    secret: null,
    issuer: ISSUER,
    audience: AUDIENCE,
    role_claim: 'role',
    clock_skew_seconds: 30,
    ...overrides,
  };
}

interface SignOptions {
  key?: CryptoKey | Uint8Array;
  alg?: string;
  kid?: string | null;
  issuer?: string;
  audience?: string;
  expiresAt?: number | null;
}

async function sign(claims: JWTPayload, opts: SignOptions = {}): Promise<string> {
  const alg = opts.alg ?? 'RS256';
  const kid = opts.kid === undefined ? KID : opts.kid;
  const jwt = new SignJWT(claims)
    .setProtectedHeader(kid === null ? { alg } : { alg, kid })
    .setIssuedAt()
    .setSubject('user-42')
    .setIssuer(opts.issuer ?? ISSUER)
    .setAudience(opts.audience ?? AUDIENCE);
  const exp = opts.expiresAt === undefined ? Math.floor(Date.now() / 1000) + 600 : opts.expiresAt;
  if (exp !== null) jwt.setExpirationTime(exp);
  return jwt.sign(opts.key ?? privateKey);
}

const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** The refusal `verify` throws: its code and message, and proof the message does not quote the token. */
async function refusal(verifier: JwtVerifier, token: string): Promise<AetheriumError> {
  const err = await verifier.verify(token).then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AetheriumError);
  const e = err as AetheriumError;
  expect(e.message).not.toContain(token);
  for (const part of token.split('.').filter((p) => p.length > 0)) expect(e.message).not.toContain(part);
  return e;
}

async function expectUnauthorized(verifier: JwtVerifier, token: string, message: RegExp): Promise<void> {
  const err = await refusal(verifier, token);
  expect(err.code).toBe('unauthorized');
  expect(err.status).toBe(401);
  expect(err.message).toMatch(message);
}

describe('JwtVerifier with a JWKS (RS256)', () => {
  let verifier: JwtVerifier;
  beforeAll(() => {
    verifier = new JwtVerifier(settings());
  });

  it('is enabled and accepts a valid token, with identity and role', async () => {
    expect(verifier.enabled).toBe(true);
    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = await sign({ role: 'operator', name: 'Ada Lovelace', email: 'ada@example.test' }, { expiresAt: exp });
    expect(JwtVerifier.looksLikeJwt(token)).toBe(true);
    expect(await verifier.verify(token)).toEqual({
      kind: 'jwt',
      id: 'user-42',
      name: 'Ada Lovelace',
      role: 'operator',
      expires_at: new Date(exp * 1000),
    });
  });

  it('falls back to preferred_username, email, then sub for the name', async () => {
    const a = await verifier.verify(await sign({ role: 'viewer', preferred_username: 'ada', email: 'a@x.test' }));
    expect(a.name).toBe('ada');
    const b = await verifier.verify(await sign({ role: 'viewer', email: 'a@x.test' }));
    expect(b.name).toBe('a@x.test');
    const c = await verifier.verify(await sign({ role: 'admin' }));
    expect(c).toMatchObject({ name: 'user-42', role: 'admin' });
  });

  it('caches the key set instead of fetching it per token', async () => {
    const before = jwksHits;
    await verifier.verify(await sign({ role: 'viewer' }));
    await verifier.verify(await sign({ role: 'viewer' }));
    expect(jwksHits).toBe(before);
  });

  it('refuses an expired token', async () => {
    const token = await sign({ role: 'admin' }, { expiresAt: Math.floor(Date.now() / 1000) - 3600 });
    await expectUnauthorized(verifier, token, /^the token has expired$/);
  });

  it('honours the clock skew tolerance', async () => {
    const token = await sign({ role: 'admin' }, { expiresAt: Math.floor(Date.now() / 1000) - 5 });
    expect((await verifier.verify(token)).role).toBe('admin');
    const strict = new JwtVerifier(settings({ clock_skew_seconds: 0 }));
    await expectUnauthorized(strict, token, /expired/);
  });

  it('refuses a token without exp', async () => {
    const token = await sign({ role: 'admin' }, { expiresAt: null });
    await expectUnauthorized(verifier, token, /no exp claim/);
  });

  it('refuses a token signed with another key under the same kid', async () => {
    const token = await sign({ role: 'admin' }, { key: otherPrivateKey });
    await expectUnauthorized(verifier, token, /^the token's signature does not verify$/);
  });

  it('refuses a token signed with another key without a kid', async () => {
    const token = await sign({ role: 'admin' }, { key: otherPrivateKey, kid: null });
    await expectUnauthorized(verifier, token, /signature does not verify/);
  });

  it('refuses a token whose kid is not in the key set', async () => {
    const token = await sign({ role: 'admin' }, { key: otherPrivateKey, kid: 'unknown-kid' });
    await expectUnauthorized(verifier, token, /no key in the identity provider's key set matches/);
  });

  it('refuses a token whose payload was tampered with', async () => {
    const token = await sign({ role: 'viewer' });
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString()) as Record<string, unknown>;
    const forged = `${header}.${b64url({ ...claims, role: 'admin' })}.${signature}`;
    await expectUnauthorized(verifier, forged, /signature does not verify/);
  });

  it('refuses the wrong audience', async () => {
    const token = await sign({ role: 'admin' }, { audience: 'some-other-api' });
    await expectUnauthorized(verifier, token, /^the token's audience is not aetherium-api$/);
  });

  it('refuses the wrong issuer', async () => {
    const token = await sign({ role: 'admin' }, { issuer: 'https://evil.example.test' });
    await expectUnauthorized(verifier, token, new RegExp(`^the token's issuer is not ${ISSUER}$`));
  });

  it('does not check issuer or audience when they are not configured', async () => {
    const lax = new JwtVerifier(settings({ issuer: null, audience: null }));
    const token = await sign({ role: 'viewer' }, { issuer: 'https://anyone.test', audience: 'anything' });
    expect((await lax.verify(token)).role).toBe('viewer');
  });

  it('refuses alg: none', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const claims = { sub: 'user-42', role: 'admin', iss: ISSUER, aud: AUDIENCE, exp };
    const token = `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url(claims)}.`;
    expect(JwtVerifier.looksLikeJwt(token)).toBe(true);
    await expectUnauthorized(verifier, token, /^the token's algorithm none is not allowed/);
    // Case games do not help either.
    const upper = `${b64url({ alg: 'NONE' })}.${b64url(claims)}.`;
    await expectUnauthorized(verifier, upper, /algorithm NONE is not allowed/);
  });

  it('refuses algorithm confusion: HS256 keyed with the RSA public key', async () => {
    const pem = new TextEncoder().encode(await exportSPKI(publicKey));
    const jwk = new TextEncoder().encode(JSON.stringify(await exportJWK(publicKey)));
    for (const secret of [pem, jwk]) {
      const token = await sign({ role: 'admin' }, { alg: 'HS256', key: secret });
      await expectUnauthorized(verifier, token, /^the token's algorithm HS256 is not allowed/);
    }
  });

  it('takes the highest known role from a nested array claim', async () => {
    const keycloak = new JwtVerifier(settings({ role_claim: 'realm_access.roles' }));
    const token = await sign({ realm_access: { roles: ['offline_access', 'viewer', 'operator'] } });
    expect((await keycloak.verify(token)).role).toBe('operator');
    const admin = await sign({ realm_access: { roles: ['admin', 'viewer'] } });
    expect((await keycloak.verify(admin)).role).toBe('admin');
  });

  it('reads a namespaced claim whose name contains dots', async () => {
    const auth0 = new JwtVerifier(settings({ role_claim: 'https://aetherium.test/roles' }));
    const token = await sign({ 'https://aetherium.test/roles': ['viewer'] });
    expect((await auth0.verify(token)).role).toBe('viewer');
  });

  it('refuses a token with no role', async () => {
    await expectUnauthorized(verifier, await sign({}), /^the token carries no role in claim role$/);
    const keycloak = new JwtVerifier(settings({ role_claim: 'realm_access.roles' }));
    await expectUnauthorized(
      keycloak,
      await sign({ realm_access: {} }),
      /^the token carries no role in claim realm_access\.roles$/,
    );
  });

  it('refuses a token with only unknown roles', async () => {
    await expectUnauthorized(verifier, await sign({ role: 'superuser' }), /claim role names no known role/);
    await expectUnauthorized(verifier, await sign({ role: ['root', 42] }), /names no known role/);
  });

  it('refuses a token without a subject', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const token = await new SignJWT({ role: 'admin' })
      .setProtectedHeader({ alg: 'RS256', kid: KID })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setExpirationTime(exp)
      .sign(privateKey);
    await expectUnauthorized(verifier, token, /no subject/);
  });

  it('refuses garbage that only looks like a JWT', async () => {
    const token = `eyJub3QganNvbg.${b64url({ sub: 'x' })}.c2ln`;
    await expectUnauthorized(verifier, token, /header is not valid/);
    await expectUnauthorized(verifier, 'not-a-jwt', /not a well-formed JWT/);
  });
});

describe('JwtVerifier with a shared secret', () => {
  const secretSettings = settings({ jwks_url: null, secret: SECRET });
  const key = new TextEncoder().encode(SECRET);

  it('accepts a token signed with the secret, for HS256, HS384 and HS512', async () => {
    const verifier = new JwtVerifier(secretSettings);
    expect(verifier.enabled).toBe(true);
    for (const alg of ['HS256', 'HS384', 'HS512']) {
      const identity = await verifier.verify(await sign({ role: 'admin' }, { alg, key }));
      expect(identity).toMatchObject({ kind: 'jwt', id: 'user-42', role: 'admin' });
    }
  });

  it('refuses a token signed with another secret', async () => {
    const verifier = new JwtVerifier(secretSettings);
    const other = new TextEncoder().encode('another-shared-secret-that-is-long-enough!!');
    const token = await sign({ role: 'admin' }, { alg: 'HS256', key: other });
    await expectUnauthorized(verifier, token, /^the token's signature does not verify$/);
  });

  it('refuses asymmetric tokens when no JWKS is configured', async () => {
    const verifier = new JwtVerifier(secretSettings);
    const token = await sign({ role: 'admin' });
    await expectUnauthorized(verifier, token, /algorithm RS256 is not allowed/);
  });

  it('refuses a secret too short for HMAC', () => {
    expect(() => new JwtVerifier(settings({ jwks_url: null, secret: 'short' }))).toThrow(/at least 32 bytes/);
  });

  it('with both a JWKS and a secret, keeps each algorithm family to its own key', async () => {
    const both = new JwtVerifier(settings({ secret: SECRET }));
    expect((await both.verify(await sign({ role: 'viewer' }))).role).toBe('viewer');
    expect((await both.verify(await sign({ role: 'viewer' }, { alg: 'HS256', key }))).role).toBe('viewer');
    const pem = new TextEncoder().encode(await exportSPKI(publicKey));
    const confused = await sign({ role: 'admin' }, { alg: 'HS256', key: pem });
    await expectUnauthorized(both, confused, /signature does not verify/);
  });
});

describe('JwtVerifier when the key set cannot be fetched', () => {
  it('is unavailable when the JWKS server is down', async () => {
    const down = createServer();
    const base = await listen(down);
    await close(down);
    const verifier = new JwtVerifier(settings({ jwks_url: `${base}/jwks` }));
    const token = await sign({ role: 'admin' });
    const err = await refusal(verifier, token);
    expect(err.code).toBe('unavailable');
    expect(err.retryable).toBe(true);
    expect(err.message).toMatch(/key set at http:\/\/127\.0\.0\.1:\d+\/jwks cannot be fetched/);
  });

  it('is unavailable when the JWKS server answers with an error', async () => {
    const verifier = new JwtVerifier(settings({ jwks_url: jwksUrl.replace(/\/jwks$/, '/broken') }));
    const err = await refusal(verifier, await sign({ role: 'admin' }));
    expect(err.code).toBe('unavailable');
    expect(err.message).toMatch(/Expected 200 OK/);
  });

  it('still refuses a bad algorithm without touching the key set', async () => {
    const verifier = new JwtVerifier(settings({ jwks_url: 'http://127.0.0.1:9/jwks' }));
    const token = `${b64url({ alg: 'none' })}.${b64url({ sub: 'x', role: 'admin' })}.`;
    await expectUnauthorized(verifier, token, /algorithm none is not allowed/);
  });
});

describe('JwtVerifier configuration and shape', () => {
  it('is disabled with neither a JWKS URL nor a secret, and refuses everything', async () => {
    const verifier = new JwtVerifier(settings({ jwks_url: null, secret: null }));
    expect(verifier.enabled).toBe(false);
    await expectUnauthorized(verifier, await sign({ role: 'admin' }), /not configured/);
  });

  it('tells JWTs from other bearer tokens', () => {
    expect(JwtVerifier.looksLikeJwt('ae_0123456789abcdef_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ')).toBe(false);
    expect(JwtVerifier.looksLikeJwt('a.b.c')).toBe(false);
    expect(JwtVerifier.looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0')).toBe(false);
    expect(JwtVerifier.looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig+/=')).toBe(false);
    expect(JwtVerifier.looksLikeJwt('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln')).toBe(true);
  });
});
