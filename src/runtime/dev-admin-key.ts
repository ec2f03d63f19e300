/**
 * `aetherium dev` on one machine needs no extra step: at start it makes sure an admin API key
 * exists for this data directory and is written to `<data dir>/admin.key` (mode 0600, readable by
 * this user only), which the CLI on the same machine reads. A key file that no longer
 * authenticates (a new database, a revoked key) is replaced. With an in-memory database nothing is
 * written: the key is only returned.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Config } from '../config/schema.ts';
import type { ControlPlane } from '../server/control-plane.ts';

export const DEV_KEY_NAME = 'dev-admin';
export const KEY_FILE = 'admin.key';

/** Where dev mode keeps its admin key: beside the embedded database, or null for `memory://`. */
export function devKeyFile(config: Config): string | null {
  const dataDir = config.store.pglite.data_dir;
  if (config.store.kind !== 'pglite' || dataDir === 'memory://') return null;
  return join(dirname(dataDir), KEY_FILE);
}

export async function ensureDevAdminKey(
  config: Config,
  controlPlane: ControlPlane,
): Promise<{ token: string; file: string | null; created: boolean }> {
  const file = devKeyFile(config);
  const authenticator = controlPlane.authenticator;
  const existing = file && existsSync(file) ? readFileSync(file, 'utf8').trim() : null;
  if (existing && authenticator) {
    const identity = await authenticator.authenticate(existing).catch(() => null); // replaced below
    if (identity?.role === 'admin') return { token: existing, file, created: false };
  }
  // The old dev key, if any, is revoked: the file is the one place the dev admin key lives.
  await controlPlane.tokens.revoke(DEV_KEY_NAME).catch(() => undefined); // none live: nothing to revoke
  const { token } = await controlPlane.tokens.create({ name: DEV_KEY_NAME, role: 'admin' }, null);
  if (file) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    writeFileSync(file, `${token}\n`, { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return { token, file, created: true };
}
