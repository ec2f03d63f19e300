/**
 * The CLI's credentials, in order: `--token`, `AETHERIUM_TOKEN`, then the admin key that
 * `aetherium dev` wrote for this machine (`.aetherium/admin.key` in the working directory, or the
 * file `AETHERIUM_KEY_FILE` names). The key travels in the Authorization header, never in a URL.
 */
import { existsSync, readFileSync } from 'node:fs';

let explicit: string | undefined;

export function setToken(token: string | undefined): void {
  explicit = token;
}

export function currentToken(): string | null {
  if (explicit) return explicit;
  if (process.env.AETHERIUM_TOKEN) return process.env.AETHERIUM_TOKEN;
  const file = process.env.AETHERIUM_KEY_FILE ?? '.aetherium/admin.key';
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || null : null;
}

export function authHeaders(): Record<string, string> {
  const token = currentToken();
  return token ? { authorization: `Bearer ${token}` } : {};
}
