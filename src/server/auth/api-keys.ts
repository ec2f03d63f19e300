/**
 * API keys: `ae_<id>_<secret>`. The id finds the record without a scan; the secret (256 random
 * bits) is never stored, only its scrypt hash with a salt of its own, so a copy of the database
 * gives no usable key. scrypt is slow on purpose (tens of milliseconds), so a process remembers
 * the keys it has verified, by a SHA-256 of the whole key, and pays that cost once per key, not
 * once per request. Revocation and expiry are checked on every request, against a record read at
 * most a second ago (key-records.ts).
 */
import { hash as oneShotHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const PREFIX = 'ae';
const SCRYPT = { N: 16_384, r: 8, p: 1 } as const;
const KEY_BYTES = 32;
const KEY_SHAPE = /^ae_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface GeneratedKey {
  id: string;
  /** The whole key, shown once. */
  token: string;
  hash: string;
}

export function looksLikeApiKey(token: string): boolean {
  return KEY_SHAPE.test(token);
}

export function parseApiKey(token: string): { id: string; secret: string } | null {
  const match = KEY_SHAPE.exec(token);
  return match ? { id: match[1]!, secret: match[2]! } : null;
}

function derive(secret: string, salt: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_BYTES, SCRYPT, (err, key) => (err ? reject(err) : resolve(key))),
  );
}

export async function generateApiKey(): Promise<GeneratedKey> {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(KEY_BYTES).toString('base64url');
  return { id, token: `${PREFIX}_${id}_${secret}`, hash: await hashSecret(secret) };
}

export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(secret, salt);
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const key = await new Promise<Buffer>((resolve, reject) =>
    scrypt(secret, Buffer.from(salt, 'base64url'), expected.length, params, (err, k) =>
      err ? reject(err) : resolve(k),
    ),
  );
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Keys this process has verified: a digest of the whole key, never the key itself. */
export class VerifiedKeys {
  private readonly verified = new Map<string, number>();

  constructor(
    private readonly ttlMs = 5 * 60_000,
    private readonly max = 10_000,
  ) {}

  private digest(token: string): string {
    // The one-shot form: a third of the cost of a Hash object, and this runs on every request.
    return oneShotHash('sha256', token, 'base64url');
  }

  has(token: string, now = Date.now()): boolean {
    const until = this.verified.get(this.digest(token));
    return until !== undefined && until > now;
  }

  add(token: string, now = Date.now()): void {
    if (this.verified.size >= this.max) this.verified.clear();
    this.verified.set(this.digest(token), now + this.ttlMs);
  }
}
