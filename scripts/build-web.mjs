/**
 * The web UI's build (web/ → web/dist, by Vite), run by scripts/build.mjs: so `npm ci`, and when
 * stale `npm start` and `npm test`, build it with no second command. Like dist/, each build is
 * written beside web/dist and swapped in whole, so a control plane serving the old one never
 * serves half a tree. Its inputs: web/ and the SDK it bundles (src/sdk, src/contract, src/domain).
 * Without Vite (an install with --omit=dev) an existing build is kept and a missing one reported.
 */
import { existsSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const WEB_INPUTS = ['web', 'src/sdk', 'src/contract', 'src/domain', 'scripts/build-web.mjs'];
const OUT = 'web/dist';
const STAMP = 'web/dist/.built';

function newest(root) {
  let latest = 0;
  const visit = (path) => {
    let info;
    try {
      info = statSync(path);
    } catch {
      return;
    }
    if (info.mtimeMs > latest) latest = info.mtimeMs;
    if (!info.isDirectory()) return;
    for (const entry of readdirSync(path)) {
      // Its own output and work directories are not inputs.
      if (path.endsWith('/web') && (entry === 'dist' || entry.startsWith('.dist-'))) continue;
      visit(join(path, entry));
    }
  };
  for (const input of WEB_INPUTS) visit(join(root, input));
  return latest;
}

/** 'missing', 'stale' or 'fresh', as for dist/. */
export function webState(root) {
  if (!existsSync(join(root, 'web', 'vite.config.ts'))) return 'fresh'; // no UI in this tree
  let built;
  try {
    built = statSync(join(root, STAMP)).mtimeMs;
  } catch {
    return 'missing';
  }
  return newest(root) > built ? 'stale' : 'fresh';
}

/** Builds web/dist; returns a line for the build's log, or null when there is nothing to build. */
export async function buildWeb(root, { ifStale = false } = {}) {
  const state = webState(root);
  if (ifStale && state === 'fresh') return null;
  if (!existsSync(join(root, 'web', 'vite.config.ts'))) return null;
  let vite;
  try {
    vite = await import('vite');
  } catch {
    if (state === 'missing') return 'warning: Vite is not installed (npm ci --omit=dev?), so the web UI is not built';
    return 'web/dist kept: Vite is not installed';
  }
  const started = Date.now();
  const fresh = join(root, 'web', `.dist-new-${process.pid}`);
  const old = join(root, 'web', `.dist-old-${process.pid}`);
  rmSync(fresh, { recursive: true, force: true });
  // A production build whatever runs it: under Vitest NODE_ENV is `test`, and Vite (and so React)
  // would take that for a development build.
  const nodeEnv = process.env.NODE_ENV;
  process.env.NODE_ENV = 'production';
  try {
    const result = await vite.build({
      mode: 'production',
      configFile: join(root, 'web', 'vite.config.ts'),
      logLevel: 'warn',
      build: { outDir: fresh, emptyOutDir: true },
    });
    const stamp = join(fresh, '.built');
    writeFileSync(stamp, '');
    utimesSync(stamp, new Date(started), new Date(started));
    if (existsSync(join(root, OUT))) renameSync(join(root, OUT), old);
    renameSync(fresh, join(root, OUT));
    rmSync(old, { recursive: true, force: true });
    const outputs = [result].flat().flatMap((r) => r.output ?? []);
    const js = outputs.filter((o) => o.type === 'chunk').length;
    return `web/dist in ${Date.now() - started} ms: ${js} scripts`;
  } catch (err) {
    rmSync(fresh, { recursive: true, force: true });
    throw err;
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV;
    else process.env.NODE_ENV = nodeEnv;
  }
}
