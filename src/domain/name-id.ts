import { createHash } from 'node:crypto';

/**
 * A UUID derived from a name (the layout of a version 5 UUID over SHA-1): the same name always gives
 * the same id, so two replicas that decide the same thing at once write one row, not two.
 */
export function idFromName(name: string): string {
  const hex = createHash('sha1').update(name).digest('hex');
  const variant = ((Number.parseInt(hex.slice(16, 18), 16) & 0x3f) | 0x80).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-5${hex.slice(13, 16)}-${variant}${hex.slice(18, 20)}-${hex.slice(20, 32)}`;
}
