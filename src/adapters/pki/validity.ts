/**
 * The validity window of a certificate we sign. It opens CERT_BACKDATE_MS before the moment of
 * signing, for hosts whose clocks run a little behind, and never outlives the CA that signs it:
 * past the CA's own notAfter the chain would fail anyway, so the leaf says so honestly.
 */
import { CERT_BACKDATE_MS, invalid } from '../../domain/index.ts';

export const DAY_MS = 24 * 60 * 60 * 1000;

export interface Lifetime {
  /** Validity in days. */
  days?: number;
  /** Validity in milliseconds; wins over `days`. For short-lived worker certificates. */
  ttlMs?: number;
}

export function lifetimeMs(lifetime: Lifetime, defaultDays: number): number {
  if (lifetime.ttlMs !== undefined) return positive(lifetime.ttlMs, 'ttlMs');
  return positive(lifetime.days ?? defaultDays, 'days') * DAY_MS;
}

export function validityWindow(ms: number, notAfterCap?: Date): { notBefore: Date; notAfter: Date } {
  // X.509 times have whole seconds: truncate first, so the dates we report are the dates signed.
  const now = Math.floor(Date.now() / 1000) * 1000;
  if (notAfterCap && notAfterCap.getTime() <= now) {
    throw invalid(`the CA certificate expired at ${notAfterCap.toISOString()}; create a new CA`);
  }
  const notAfter = notAfterCap ? Math.min(now + ms, notAfterCap.getTime()) : now + ms;
  return { notBefore: new Date(now - CERT_BACKDATE_MS), notAfter: new Date(notAfter) };
}

function positive(value: number, name: string): number {
  if (!Number.isFinite(value) || value <= 0) throw invalid(`${name} must be a positive number, not ${value}`);
  return value;
}
