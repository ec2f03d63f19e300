/**
 * Whether dist/ was built from the current sources: the newest modification time among the build's
 * inputs against the stamp the build leaves (set to the moment it started reading them). A walk of
 * src/ costs a couple of milliseconds, so bin/aetherium.mjs runs it on every call in a checkout.
 * Directories count too, so a deleted or renamed file makes the build stale as well.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** What the build reads, relative to the package root. */
export const BUILD_INPUTS = ['src', 'scripts/build.mjs', 'tsconfig.sdk.json'];
/** Written last by a build, with the time the build started as its mtime. */
export const BUILD_STAMP = 'dist/.built';

/** The newest mtime (ms) among the build inputs; 0 when there are none. */
export function newestInput(root) {
  let newest = 0;
  const visit = (path) => {
    let stat;
    try {
      stat = statSync(path);
    } catch {
      return;
    }
    if (stat.mtimeMs > newest) newest = stat.mtimeMs;
    if (stat.isDirectory()) for (const entry of readdirSync(path)) visit(join(path, entry));
  };
  for (const input of BUILD_INPUTS) visit(join(root, input));
  return newest;
}

/** 'missing' (no build), 'stale' (an input changed since it started) or 'fresh'. */
export function buildState(root) {
  let built;
  try {
    built = statSync(join(root, BUILD_STAMP)).mtimeMs;
  } catch {
    return 'missing';
  }
  return newestInput(root) > built ? 'stale' : 'fresh';
}
