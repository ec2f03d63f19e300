#!/usr/bin/env node
// Entry point for the `aetherium` command. It runs the ahead-of-time build, dist/cli/main.mjs
// (`npm run build`; `npm ci`, `npm start` and `npm test` run it), when that was built from the
// current sources. Otherwise it runs the TypeScript sources through tsx, as they are: a checkout
// with no build, or with sources edited since the last one, still works, only slower to start.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = new URL('..', import.meta.url);
const built = new URL('dist/cli/main.mjs', root);
let useBuild = existsSync(built);
// In a checkout, the sources are beside the build: use it only if nothing changed since (a walk of
// src/ takes a few milliseconds). A package installed without src/ has only the build.
if (useBuild && existsSync(new URL('src/', root))) {
  const { buildState } = await import('../scripts/build-state.mjs');
  useBuild = buildState(fileURLToPath(root)) === 'fresh';
}
if (useBuild) {
  // Source maps are read only where stack traces matter (the processes, AETHERIUM_DEBUG): reading
  // them costs a client command a third of its start-up.
  if (process.env.AETHERIUM_DEBUG) process.setSourceMapsEnabled(true);
  await import(built.href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
