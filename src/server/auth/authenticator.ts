/**
 * Turns a bearer token into an Identity: an API key (looked up by its id, its secret checked
 * against the stored hash, revocation and expiry read on every request), or a JWT verified by the
 * configured JWKS or secret. Messages say what is wrong without repeating the token.
 */
import { AetheriumError } from '../../domain/index.ts';
import type { Logger } from '../../ports/logger.ts';
import type { Store } from '../../ports/store.ts';
import { looksLikeApiKey, parseApiKey, VerifiedKeys, verifySecret } from './api-keys.ts';
import type { Identity } from './identity.ts';
import { JwtVerifier } from './jwt.ts';

const unauthorized = (message: string) => new AetheriumError('unauthorized', message);

/** The store writes last use at most once a minute anyway; this skips asking it when not due. */
const TOUCH_EVERY_MS = 60_000;

export class Authenticator {
  private readonly verified = new VerifiedKeys();

  constructor(
    private readonly store: Store,
    private readonly jwt: JwtVerifier | null,
    private readonly log: Logger,
  ) {}

  async authenticate(token: string): Promise<Identity> {
    if (looksLikeApiKey(token)) return this.apiKey(token);
    if (this.jwt?.enabled && JwtVerifier.looksLikeJwt(token)) return this.jwt.verify(token);
    const accepted = this.jwt?.enabled ? 'an API key or a JWT' : 'an API key (`aetherium tokens create`)';
    throw unauthorized(`the bearer token is not ${accepted}`);
  }

  private async apiKey(token: string): Promise<Identity> {
    const parsed = parseApiKey(token);
    const key = parsed ? await this.store.getApiKey(parsed.id) : null;
    if (!parsed || !key) throw unauthorized('unknown API key');
    if (key.revoked_at) throw unauthorized(`the API key ${key.name} was revoked`);
    if (key.expires_at && key.expires_at.getTime() <= Date.now())
      throw unauthorized(`the API key ${key.name} has expired`);
    if (!this.verified.has(token)) {
      if (!(await verifySecret(parsed.secret, key.hash))) throw unauthorized('unknown API key');
      this.verified.add(token);
    }
    // Last use is bookkeeping, kept to the minute: the record just read says whether it is due, so a
    // busy key costs no write per request. A failed write must not refuse a valid caller.
    const now = new Date();
    if (!key.last_used_at || now.getTime() - key.last_used_at.getTime() >= TOUCH_EVERY_MS) {
      this.store.touchApiKey(key.id, now).catch((err: unknown) => this.log.warn({ err }, 'recording key use failed'));
    }
    return { kind: 'key', id: key.id, name: key.name, role: key.role };
  }
}
