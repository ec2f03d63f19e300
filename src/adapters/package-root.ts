/**
 * Where the package's own files are (package.json, migrations/, image/): the directory of the
 * nearest package.json named "aetherium" above this module. A path relative to a module would
 * differ between the sources (src/adapters/) and the bundle (dist/…), so modules ask here instead.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_NAME = 'aetherium';

export interface PackageManifest {
  name: string;
  version: string;
}

let found: { root: string; manifest: PackageManifest } | undefined;

function locate(): { root: string; manifest: PackageManifest } {
  if (found) return found;
  const start = dirname(fileURLToPath(import.meta.url));
  for (let dir = start; ; dir = dirname(dir)) {
    let manifest: PackageManifest | null = null;
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageManifest;
    } catch {
      // No package.json here (or not JSON): keep walking up.
    }
    if (manifest?.name === PACKAGE_NAME) return (found = { root: dir, manifest });
    if (dirname(dir) === dir) throw new Error(`no package.json named "${PACKAGE_NAME}" in ${start} or above`);
  }
}

/** The package's root directory. */
export function packageRoot(): string {
  return locate().root;
}

/** A path inside the package, e.g. `packagePath('migrations')`. */
export function packagePath(...segments: string[]): string {
  return join(locate().root, ...segments);
}

/** The package's package.json. */
export function packageManifest(): PackageManifest {
  return locate().manifest;
}
