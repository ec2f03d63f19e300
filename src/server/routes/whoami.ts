/**
 * GET /api/v1/auth/whoami: the caller as the server sees it. A client checks a token with it and
 * offers only the controls the role allows (the web UI hides the rest); the server still enforces
 * the role on every route.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { fastifySchema } from '../../contract/routes.ts';
import { LOCAL_ADMIN } from '../auth/identity.ts';

export function whoamiRoutes(authEnabled: boolean): FastifyPluginAsyncZod {
  return async (app) => {
    app.get('/auth/whoami', { schema: fastifySchema('whoami') }, async (request) => {
      const { kind, id, name, role } = request.identity ?? LOCAL_ADMIN;
      return { kind, id, name, role, auth_enabled: authEnabled };
    });
  };
}
