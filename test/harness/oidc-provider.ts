/**
 * A real OpenID Provider for the sign-in tests: node-oidc-provider (a certified implementation),
 * on a loopback port, with one confidential client (PKCE required) and its development login and
 * consent pages, where any login name signs in. Each user's `role` claim comes from `roles`.
 */
import type { Server } from 'node:http';
import Provider from 'oidc-provider';

export interface OidcProviderOptions {
  port: number;
  clientId: string;
  clientSecret: string;
  redirectUri: string;
  /** Login name → the `role` claim of its tokens (absent: no role claim). */
  roles: Record<string, string>;
}

export interface TestOidcProvider {
  issuer: string;
  close(): Promise<void>;
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<TestOidcProvider> {
  const issuer = `http://127.0.0.1:${options.port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: options.clientId,
        client_secret: options.clientSecret,
        redirect_uris: [options.redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    pkce: { required: () => true },
    claims: { openid: ['sub'], profile: ['name', 'role'] },
    // The profile claims in the ID token itself: the token the UI signs in with carries the role.
    conformIdTokenClaims: false,
    findAccount: async (_ctx, sub) => ({
      accountId: sub,
      claims: async () => ({ sub, name: `User ${sub}`, ...(options.roles[sub] ? { role: options.roles[sub] } : {}) }),
    }),
    features: { devInteractions: { enabled: true } },
    cookies: { keys: ['aetherium-test-cookie-key'] },
  });
  // Its development keys and pages warn on start: expected here.
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider:', err));
  const server: Server = await new Promise((resolve) => {
    const s = provider.listen(options.port, '127.0.0.1', () => resolve(s));
  });
  return {
    issuer,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
