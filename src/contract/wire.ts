/**
 * How values travel: a time is an RFC 3339 string on the wire and a `Date` on either side. One
 * codec does both directions, so the server's serializer encodes with the same schema the SDK
 * decodes with, and the OpenAPI document shows `string, format: date-time`.
 */
import * as z from 'zod';

export const timestamp = z.codec(z.iso.datetime({ offset: true }), z.date(), {
  decode: (text) => new Date(text),
  encode: (date) => date.toISOString(),
});

export const nullableTimestamp = timestamp.nullable();

export const labels = z.record(z.string(), z.string());

/** Counts beside a list: how many items this answer holds. */
export const total = z.number().int().min(0);
