/** `GET /health`: each engine's state and any warning an operator must see. */
import * as z from 'zod';

export const engineState = z.object({
  kind: z.string(),
  ok: z.boolean(),
  error: z.string().optional(),
  latency_ms: z.number().optional(),
});

export const healthReport = z
  .object({
    status: z.enum(['ok', 'degraded']),
    mode: z.string(),
    version: z.string(),
    engines: z.record(z.string(), engineState),
    warnings: z.array(z.string()),
  })
  .meta({ id: 'Health' });
