/**
 * Turns a bearer token into an Identity: an API key (looked up by its id, its secret checked
 * against the stored hash, revocation read at most RECHECK_MS ago (key-records.ts), expiry checked
 * on every request), or a JWT verified by the configured JWKS or secret. Messages say what is
 * wrong without repeating the token.
 */
import { AetheriumError, type ApiKeyRecord } from '../../domain/index.ts';
import type { Logger } from '../../ports/logger.ts';
import type { Store } from '../../ports/store.ts';
import { looksLikeApiKey, parseApiKey, VerifiedKeys, verifySecret } from './api-keys.ts';
import { KeyRecords } from './key-records.ts';
import type { Identity } from './identity.ts';
import { JwtVerifier } from './jwt.ts';

const unauthorized = (message: string) => new AetheriumError('unauthorized', message);

/** The store writes last use at most once a minute anyway; this skips asking it when not due. */
const TOUCH_EVERY_MS = 60_000;

export class Authenticator {
  private readonly verified = new VerifiedKeys();
  private readonly records: KeyRecords;

  constructor(
    private readonly store: Store,
    private readonly jwt: JwtVerifier | null,
    private readonly log: Logger,
  ) {
    this.records = new KeyRecords((id) => store.getApiKey(id));
  }

  /** This replica revoked a key: read every key's record again before trusting it. */
  keysChanged(): void {
    this.records.forget();
  }

  async authenticate(token: string): Promise<Identity> {
    return this.authenticateNow(token);
  }

  /**
   * The same, answered without waiting when no I/O is needed (an API key whose record was read and
   * whose secret was checked a moment ago): the hook on every request takes this path.
   */
  authenticateNow(token: string): Identity | Promise<Identity> {
    if (looksLikeApiKey(token)) return this.apiKey(token);
    if (this.jwt?.enabled && JwtVerifier.looksLikeJwt(token)) return this.jwt.verify(token);
    const accepted = this.jwt?.enabled ? 'an API key or a JWT' : 'an API key (`aetherium tokens create`)';
    throw unauthorized(`the bearer token is not ${accepted}`);
  }

  private apiKey(token: string): Identity | Promise<Identity> {
    const parsed = parseApiKey(token);
    if (!parsed) throw unauthorized('unknown API key');
    const key = this.records.get(parsed.id);
    return key instanceof Promise
      ? key.then((read) => this.admitKey(token, parsed.secret, read))
      : this.admitKey(token, parsed.secret, key);
  }

  private admitKey(token: string, secret: string, key: ApiKeyRecord | null): Identity | Promise<Identity> {
    if (!key) throw unauthorized('unknown API key');
    if (key.revoked_at) throw unauthorized(`the API key ${key.name} was revoked`);
    if (key.expires_at && key.expires_at.getTime() <= Date.now())
      throw unauthorized(`the API key ${key.name} has expired`);
    if (this.verified.has(token)) return this.used(key);
    return verifySecret(secret, key.hash).then((ok) => {
      if (!ok) throw unauthorized('unknown API key');
      this.verified.add(token);
      return this.used(key);
    });
  }

  private used(key: ApiKeyRecord): Identity {
    // Last use is bookkeeping, kept to the minute: the record (and this process's own last write)
    // says whether it is due, so a busy key costs no write per request. A failed write must not
    // refuse a valid caller.
    const now = Date.now();
    if (now - this.records.lastUsed(key) >= TOUCH_EVERY_MS) {
      this.records.markUsed(key.id, now);
      this.store
        .touchApiKey(key.id, new Date(now))
        .catch((err: unknown) => this.log.warn({ err }, 'recording key use failed'));
    }
    return { kind: 'key', id: key.id, name: key.name, role: key.role };
  }
}
