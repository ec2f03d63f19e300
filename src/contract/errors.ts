/**
 * The one error answer: `{ error: { code, message, details? } }`. Every route declares it for each
 * error status it can answer, so clients can switch on `code` and the docs show it.
 */
import * as z from 'zod';
import { ERROR_CATALOGUE, type ErrorCode } from '../domain/errors.ts';

const CODES = Object.keys(ERROR_CATALOGUE) as [ErrorCode, ...ErrorCode[]];

export const errorBody = z
  .object({
    error: z.object({
      code: z.enum(CODES),
      message: z.string(),
      /** For `validation_failed`: each field refused, as a JSON pointer into the request part. */
      details: z.unknown().optional(),
    }),
  })
  .meta({ id: 'Error', description: 'Every error answer; `code` is stable, `message` says what to change.' });

export type ErrorAnswer = z.output<typeof errorBody>;

/** The statuses any authenticated route may answer with an error, beside its own. */
export const COMMON_ERROR_STATUSES = [400, 401, 403, 429, 500, 503] as const;
