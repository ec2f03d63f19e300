/**
 * API keys as the API offers them: create (the key is shown once), list, revoke, and the one-time
 * bootstrap of a new cluster's first admin key, as `nomad acl bootstrap` does.
 */
import { type ApiKeyRecord, AetheriumError, conflict, notFound, type Role } from '../../domain/index.ts';
import type { Store } from '../../ports/store.ts';
import { generateApiKey } from '../auth/api-keys.ts';
import type { Identity } from '../auth/identity.ts';

/** What the API shows of a key: never its hash. */
export type ApiKeyView = Omit<ApiKeyRecord, 'hash'>;

export const BOOTSTRAP_KEY_NAME = 'bootstrap';

export function viewOf(key: ApiKeyRecord): ApiKeyView {
  const { hash: _hash, ...view } = key;
  return view;
}

export class TokenService {
  constructor(private readonly store: Store) {}

  async create(input: { name: string; role: Role; expires_in_ms?: number }, by: Identity | null) {
    const generated = await generateApiKey();
    const now = new Date();
    const key: ApiKeyRecord = {
      id: generated.id,
      name: input.name,
      role: input.role,
      hash: generated.hash,
      created_at: now,
      created_by: by ? `${by.kind}:${by.name}` : null,
      last_used_at: null,
      expires_at: input.expires_in_ms ? new Date(now.getTime() + input.expires_in_ms) : null,
      revoked_at: null,
    };
    await this.store.insertApiKey(key);
    return { ...viewOf(key), token: generated.token };
  }

  async list(includeRevoked: boolean): Promise<ApiKeyView[]> {
    return (await this.store.listApiKeys({ include_revoked: includeRevoked })).map(viewOf);
  }

  async revoke(idOrName: string): Promise<ApiKeyView> {
    const revoked = await this.store.revokeApiKey(idOrName, new Date());
    if (!revoked) throw notFound('live API key', idOrName);
    return viewOf(revoked);
  }

  /** The first admin key of a cluster that has never had one; refused once any key exists. */
  async bootstrap() {
    const existing = await this.store.listApiKeys({ include_revoked: true });
    if (existing.length > 0) {
      throw conflict('this cluster is bootstrapped already: ask an admin for a key (`aetherium tokens create`)');
    }
    try {
      return await this.create({ name: BOOTSTRAP_KEY_NAME, role: 'admin' }, null);
    } catch (err) {
      // Two bootstraps at once: the unique live name lets exactly one of them through.
      if (err instanceof AetheriumError && err.code === 'conflict')
        throw conflict('the cluster was bootstrapped just now');
      throw err;
    }
  }
}
