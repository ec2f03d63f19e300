/**
 * Before any test file: build dist/ when it is missing or older than the sources. Tests spawn
 * bin/aetherium.mjs, which runs the build only when it is fresh (else the sources through tsx), so
 * this is what makes them run the current code at the build's speed.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export default function setup(): void {
  const build = fileURLToPath(new URL('../scripts/build.mjs', import.meta.url));
  execFileSync(process.execPath, [build, '--if-stale'], { stdio: 'inherit' });
}
