/** Who is calling: an API key or a JWT's subject, with the role it carries. */
import type { Role } from './roles.ts';

export interface Identity {
  kind: 'key' | 'jwt' | 'local';
  id: string;
  name: string;
  role: Role;
}

/**
 * The caller when authentication is switched off, which only a loopback listener allows: anyone
 * who can reach the port is on this machine already.
 */
export const LOCAL_ADMIN: Identity = { kind: 'local', id: 'local', name: 'local (authentication off)', role: 'admin' };

/**
 * The caller as a namespace for what it names itself (its idempotency keys): `key:<id>`,
 * `jwt:<subject>`, or `local` when authentication is off, so two callers' names never meet.
 */
export function identityScope(identity: Identity | null): string {
  if (!identity || identity.kind === 'local') return 'local';
  return `${identity.kind}:${identity.id}`;
}
