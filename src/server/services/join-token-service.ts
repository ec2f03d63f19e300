/**
 * Join tokens and worker revocation as the API offers them. An admin creates a token (shown once);
 * the agent port redeems it when a new worker sends it with its CSR; an admin can revoke a token,
 * and revoke every certificate a worker holds. Signing and the agent port itself live elsewhere.
 */
import { randomBytes } from 'node:crypto';
import {
  AetheriumError,
  conflict,
  formatJoinToken,
  invalid,
  type JoinTokenRecord,
  type JoinTokenState,
  joinTokenState,
  normalizeCaFingerprint,
  notFound,
  parseJoinToken,
  JOIN_DEFAULT_TTL_MS,
  JOIN_DEFAULT_USES,
  JOIN_MAX_TTL_MS,
  JOIN_MAX_USES,
  JOIN_MIN_TTL_MS,
} from '../../domain/index.ts';
import type { Store } from '../../ports/store.ts';
import { hashSecret, verifySecret } from '../auth/api-keys.ts';

export const NO_AGENT_CA_MESSAGE =
  'this control plane has no agent CA (agent.tls.ca_file and agent.tls.ca_key_file): it cannot admit workers by token';

export interface JoinTokenInput {
  description?: string;
  /** 1 to JOIN_MAX_USES; default 1. */
  maxUses?: number;
  /** JOIN_MIN_TTL_MS to JOIN_MAX_TTL_MS; default 1 h. */
  ttlMs?: number;
  createdBy: string | null;
}

/** What the API shows of a token: never its secret or hash, with what it can still do. */
export type JoinTokenView = Omit<JoinTokenRecord, 'secret_hash'> & { state: JoinTokenState };

export type RedeemFailure = 'malformed' | 'unknown' | 'expired' | 'used_up' | 'revoked';
export type RedeemResult = { ok: true; record: JoinTokenRecord } | { ok: false; reason: RedeemFailure };

export function joinTokenView(token: JoinTokenRecord, now = new Date()): JoinTokenView {
  const { secret_hash: _hash, ...view } = token;
  return { ...view, state: joinTokenState(token, now) };
}

function inRange(name: string, value: number, min: number, max: number, unit = ''): number {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`${name}: ${value}${unit} is not a whole number from ${min}${unit} to ${max}${unit}`);
  }
  return value;
}

export class JoinTokenService {
  /** Verified against when the id is unknown, so an unknown id costs the same scrypt as a wrong secret. */
  private decoy: Promise<string> | null = null;

  constructor(private readonly store: Store) {}

  /**
   * A new token pinning the CA whose fingerprint (`sha256:<hex>`) is given; null (no agent CA) is a
   * 409. The token is in this answer only: the store keeps its hash.
   */
  async create(
    input: JoinTokenInput,
    caFingerprint: string | null,
  ): Promise<{ token: string; record: JoinTokenRecord }> {
    if (caFingerprint === null) throw conflict(NO_AGENT_CA_MESSAGE);
    const maxUses = inRange('max_uses', input.maxUses ?? JOIN_DEFAULT_USES, 1, JOIN_MAX_USES);
    const ttlMs = inRange('ttl', input.ttlMs ?? JOIN_DEFAULT_TTL_MS, JOIN_MIN_TTL_MS, JOIN_MAX_TTL_MS, ' ms');
    const fingerprint = normalizeCaFingerprint(caFingerprint);
    const id = randomBytes(8).toString('hex');
    const secret = randomBytes(32).toString('base64url');
    const now = new Date();
    const record: JoinTokenRecord = {
      id,
      secret_hash: await hashSecret(secret),
      description: input.description ?? '',
      max_uses: maxUses,
      uses: 0,
      expires_at: new Date(now.getTime() + ttlMs),
      created_by: input.createdBy,
      created_at: now,
      revoked_at: null,
      last_used_at: null,
      last_worker_id: null,
    };
    await this.store.createJoinToken(record);
    return { token: formatJoinToken({ id, secret, caFingerprint: fingerprint }), record };
  }

  /**
   * One use of `token` by `workerId`: the secret is checked against its hash (in constant time), then
   * the use is taken in one conditional statement, so concurrent joins never exceed max_uses. A wrong
   * secret is 'unknown', like an unknown id: a caller learns nothing about the tokens it cannot use.
   */
  async redeem(token: string, workerId: string, now = new Date()): Promise<RedeemResult> {
    let parts: ReturnType<typeof parseJoinToken>;
    try {
      parts = parseJoinToken(token);
    } catch (err) {
      if (err instanceof AetheriumError) return { ok: false, reason: 'malformed' };
      throw err;
    }
    const record = await this.store.getJoinToken(parts.id);
    const matches = await verifySecret(parts.secret, record?.secret_hash ?? (await this.decoyHash()));
    if (!record || !matches) return { ok: false, reason: 'unknown' };
    const used = await this.store.useJoinToken(record.id, workerId, now);
    if (used) return { ok: true, record: used };
    // Refused: say why, from the row as it is now (another join may have taken the last use).
    const current = (await this.store.getJoinToken(record.id)) ?? record;
    const state = joinTokenState(current, now);
    return { ok: false, reason: state === 'active' ? 'used_up' : state };
  }

  async list(now = new Date()): Promise<JoinTokenView[]> {
    return (await this.store.listJoinTokens()).map((t) => joinTokenView(t, now));
  }

  /** Revokes a token; revoking one twice answers it as it is, with the first revocation's time. */
  async revoke(id: string): Promise<JoinTokenView> {
    const revoked = (await this.store.revokeJoinToken(id, new Date())) ?? (await this.store.getJoinToken(id));
    if (!revoked) throw notFound('join token', id);
    return joinTokenView(revoked);
  }

  /**
   * Refuses every certificate the worker holds now: the cut-off is this moment, and the agent channel
   * refuses a certificate of this worker issued at or before it. Returns the cut-off in force. A worker
   * is known once it registered, or once a join token admitted it (it may not have registered yet).
   */
  async revokeWorker(workerId: string, by: string | null): Promise<Date> {
    const known =
      (await this.store.getWorker(workerId)) !== null ||
      (await this.store.listJoinTokens()).some((t) => t.last_worker_id === workerId);
    if (!known) throw notFound('worker', workerId);
    return this.store.revokeWorkerCertificates(workerId, new Date(), by);
  }

  private decoyHash(): Promise<string> {
    this.decoy ??= hashSecret(randomBytes(32).toString('base64url'));
    return this.decoy;
  }
}
