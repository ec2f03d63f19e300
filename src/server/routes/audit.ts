/** GET /api/v1/audit (admin): the control actions and refused callers, newest first. */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { ApiDeps } from '../api-deps.ts';

const auditQuery = z
  .object({
    actor: z.string().min(1).max(200).optional(),
    action: z.string().min(1).max(100).optional(),
    outcome: z.enum(['allowed', 'denied', 'failed', 'succeeded']).optional(),
    since: z.coerce
      .date()
      .refine((d) => d.getUTCFullYear() >= 1970 && d.getUTCFullYear() <= 9999, 'a time between 1970 and 9999')
      .optional(),
    before_id: z.coerce.number().int().min(1).optional(),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();

export function auditRoutes(deps: ApiDeps): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/audit',
      {
        schema: {
          tags: ['audit'],
          summary: 'The audit log: who did what, from where, with what outcome',
          querystring: auditQuery,
        },
      },
      async (request) => {
        const entries = await deps.audit(request.query);
        return { entries, total: entries.length };
      },
    );
  };
}
