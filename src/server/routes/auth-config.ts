/**
 * The sign-in routes a page calls before it has a token (both public):
 *   GET  /api/v1/auth/config      whether to sign in, and the OIDC provider to sign in with
 *   POST /api/v1/auth/oidc/token  redeem the provider's code for its token (see auth/oidc.ts)
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { fastifySchema } from '../../contract/routes.ts';
import { AetheriumError } from '../../domain/index.ts';
import type { OidcClient } from '../auth/oidc.ts';

export function authConfigRoutes(authEnabled: boolean, oidc: OidcClient | null): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/auth/config', { schema: fastifySchema('authConfig') }, async () => ({
      auth_enabled: authEnabled,
      // Without authentication there is nothing to sign in to.
      oidc: authEnabled && oidc ? await oidc.publicConfig() : null,
    }));

    app.post('/auth/oidc/token', { schema: fastifySchema('oidcToken') }, async (request) => {
      if (!authEnabled || !oidc)
        throw new AetheriumError('not_found', 'OIDC sign-in is not configured here (api_gateway.auth.oidc)');
      const { token, expires_in, identity } = await oidc.exchange(request.body);
      return {
        token,
        expires_in,
        identity: {
          kind: identity.kind,
          id: identity.id,
          name: identity.name,
          role: identity.role,
          auth_enabled: true,
        },
      };
    });
  };
}
