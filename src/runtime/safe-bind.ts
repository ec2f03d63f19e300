/**
 * A control plane runs commands in VMs for whoever reaches it: with authentication off, it may only
 * listen where nobody but this machine can reach it.
 */
import { isIP } from 'node:net';
import type { Config } from '../config/schema.ts';

export class UnsafeBind extends Error {}

export function isLoopback(host: string): boolean {
  if (host === 'localhost' || host === '::1' || host === '[::1]') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

export function requireSafeBind(config: Config, role: string): void {
  const { host, auth } = config.api_gateway;
  if (auth.enabled || isLoopback(host)) return;
  throw new UnsafeBind(
    `aetherium ${role} would listen on ${host} with authentication off, so anyone who can reach it could run ` +
      'commands in VMs: set api_gateway.auth.enabled: true (AETHERIUM_API_GATEWAY__AUTH__ENABLED=true), or listen on ' +
      '127.0.0.1 (api_gateway.host)',
  );
}
