#!/usr/bin/env node
/**
 * The ahead-of-time build (`npm run build`; run by `npm ci`, and when stale by `npm start` and
 * `npm test`): our own TypeScript bundled by esbuild for Node 20, node_modules left external.
 *
 *   src/cli/main.ts   → dist/cli/main.mjs   (what bin/aetherium.mjs runs)
 *   src/sdk/index.ts  → dist/sdk/index.mjs  (`aetherium/sdk`), with dist/sdk/index.d.ts from tsc
 *   src/sdk/browser.ts → dist/sdk/browser.mjs (`aetherium/sdk` for bundlers targeting a browser)
 *   web/              → web/dist            (the web UI, by Vite: scripts/build-web.mjs)
 *
 * Code splitting keeps what only some commands need (the server, the engines, the drivers) in
 * chunks loaded by their `import()`, so `aetherium --version` or `aetherium vm list` loads none of it.
 *
 * Each build writes a fresh directory next to dist/ and swaps it in whole: nothing of an older build
 * survives, and a process running the old one never sees a half-written tree.
 *
 *   node scripts/build.mjs              build
 *   node scripts/build.mjs --if-stale   build only when dist/ is missing or older than its inputs
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BUILD_STAMP, buildState } from './build-state.mjs';
import { buildWeb } from './build-web.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DIST = join(ROOT, 'dist');
const CLI_ENTRY = 'src/cli/main.ts';
const SDK_ENTRY = 'src/sdk/index.ts';
const BROWSER_SDK_ENTRY = 'src/sdk/browser.ts';
/** Work directories beside dist/ (same depth, so the source maps' relative paths stay right). */
const WORK_PREFIX = '.dist-';

function log(line) {
  process.stderr.write(`build: ${line}\n`);
}

/** Work directories left by builds that were killed (their process is gone). */
function removeAbandoned() {
  for (const name of readdirSync(ROOT)) {
    const match = /^\.dist-(?:new|old)-(\d+)$/.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    let alive = pid !== process.pid;
    try {
      if (alive) process.kill(pid, 0);
    } catch (err) {
      alive = err.code === 'EPERM';
    }
    if (!alive) rmSync(join(ROOT, name), { recursive: true, force: true });
  }
}

/**
 * Every package stays in node_modules except zod, and the one package that checks zod schemas
 * (fastify-type-provider-zod, which must see the same zod as the schemas it is given): zod is ~100
 * small modules whose loading alone took half of a client command's start-up; bundled, one file.
 */
const BUNDLED_PACKAGES = new Set(['zod', 'fastify-type-provider-zod']);

/** An esbuild plugin: a bare import of any other package (theirs too) stays an import. */
const externalPackages = {
  name: 'external-packages',
  setup(build) {
    build.onResolve({ filter: /^[^./]/ }, (args) => {
      if (args.path.startsWith('node:')) return { path: args.path, external: true };
      const parts = args.path.split('/');
      const name = args.path.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
      return BUNDLED_PACKAGES.has(name) ? undefined : { path: args.path, external: true };
    });
  },
};

async function bundle(outdir, entryPoints) {
  const { build } = await import('esbuild');
  const result = await build({
    absWorkingDir: ROOT,
    entryPoints,
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    plugins: [externalPackages],
    sourcemap: true,
    // Errors are told apart by their class name (run.ts's CONFIG_ERRORS): keep every name as written.
    keepNames: true,
    minify: true,
    outExtension: { '.js': '.mjs' },
    chunkNames: 'chunks/[name]-[hash]',
    tsconfig: join(ROOT, 'tsconfig.json'),
    logLevel: 'warning',
    metafile: true,
  });
  return Object.keys(result.metafile.outputs).filter((file) => file.endsWith('.mjs'));
}

/** dist/sdk/index.d.ts (and the declarations it imports) from tsc; skipped without TypeScript. */
async function declarations(outdir) {
  let tsc;
  try {
    tsc = join(createRequire(import.meta.url).resolve('typescript/package.json'), '..', 'bin', 'tsc');
  } catch {
    log(`warning: TypeScript is not installed (npm ci --omit=dev?), so dist/sdk/index.d.ts is not written`);
    return false;
  }
  const args = [tsc, '-p', join(ROOT, 'tsconfig.sdk.json'), '--outDir', outdir];
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  const code = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  });
  // The build does not type-check (esbuild does not either; `npm run typecheck` does): a type error
  // fails it only if tsc wrote no declarations at all.
  if (!existsSync(join(outdir, 'sdk', 'index.d.ts'))) throw new Error(`tsc -p tsconfig.sdk.json failed (exit ${code})`);
  if (code !== 0) log(`warning: tsc reported type errors (above); the declarations are written anyway`);
  rewriteSpecifiers(outdir);
  return true;
}

/**
 * tsc copies `'./x.ts'` specifiers into declarations as written (rewriteRelativeImportExtensions
 * rewrites only JavaScript). TypeScript 5 resolves them, but `'./x.js'`, resolved to `./x.d.ts`, is
 * what every consumer's TypeScript and moduleResolution reads.
 */
function rewriteSpecifiers(dir) {
  const specifier = /((?:from\s+|import\s*\(\s*)(['"]))(\.{1,2}\/[^'"]*?)\.ts\2/g;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.d.ts')) continue;
    const file = join(entry.parentPath, entry.name);
    const text = readFileSync(file, 'utf8');
    const rewritten = text.replace(specifier, '$1$3.js$2');
    if (rewritten !== text) writeFileSync(file, rewritten);
  }
}

/** Puts `fresh` in place of dist/, removing the previous build. */
function install(fresh) {
  const old = join(ROOT, `${WORK_PREFIX}old-${process.pid}`);
  try {
    renameSync(DIST, old);
  } catch (err) {
    if (err.code !== 'ENOENT') throw err;
  }
  try {
    renameSync(fresh, DIST);
  } catch (err) {
    // A build running at the same time put its own in between: it is as new as this one.
    if (err.code !== 'ENOTEMPTY' && err.code !== 'EEXIST') throw err;
    rmSync(fresh, { recursive: true, force: true });
  }
  rmSync(old, { recursive: true, force: true });
}

function kilobytes(file) {
  return `${(statSync(file).size / 1024).toFixed(1)} kB`;
}

async function main() {
  const ifStale = process.argv.includes('--if-stale');
  // The UI builds beside the bundle (each has its own inputs and freshness).
  const web = buildWeb(ROOT, { ifStale }).then((line) => line && log(line));
  try {
    if (!ifStale || buildState(ROOT) !== 'fresh') await buildDist();
  } finally {
    await web;
  }
}

async function buildDist() {
  const started = Date.now();
  removeAbandoned();
  const fresh = join(ROOT, `${WORK_PREFIX}new-${process.pid}`);
  rmSync(fresh, { recursive: true, force: true });
  const withSdk = existsSync(join(ROOT, SDK_ENTRY));
  const entryPoints = {
    'cli/main': CLI_ENTRY,
    ...(withSdk ? { 'sdk/index': SDK_ENTRY, 'sdk/browser': BROWSER_SDK_ENTRY } : {}),
  };
  try {
    const dtsStarted = Date.now();
    const dts = withSdk ? declarations(fresh).then((done) => done && Date.now() - dtsStarted) : false;
    const js = bundle(fresh, entryPoints).then((outputs) => ({ outputs, ms: Date.now() - started }));
    // Both settle before anything is removed: a failure of one must not pull the directory from under the other.
    const settled = await Promise.allSettled([js, dts]);
    const failed = settled.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    const [{ outputs, ms: bundleMs }, dtsMs] = settled.map((result) => result.value);
    // The stamp says which sources this build read: anything changed after `started` makes it stale.
    const stamp = join(fresh, BUILD_STAMP.slice('dist/'.length));
    writeFileSync(stamp, '');
    utimesSync(stamp, new Date(started), new Date(started));
    install(fresh);
    const chunks = outputs.filter((file) => file.includes('/chunks/')).length;
    const parts = [`cli/main.mjs ${kilobytes(join(DIST, 'cli/main.mjs'))}`, `${chunks} chunks`];
    if (withSdk) parts.push(`sdk/index.mjs ${kilobytes(join(DIST, 'sdk/index.mjs'))}`);
    if (dtsMs !== false) parts.push(`sdk/index.d.ts in ${dtsMs} ms`);
    log(`dist/ in ${Date.now() - started} ms (bundle ${bundleMs} ms): ${parts.join(', ')}`);
  } catch (err) {
    rmSync(fresh, { recursive: true, force: true });
    throw err;
  }
}

main().catch((err) => {
  if (err?.errors === undefined) log(`failed: ${err?.message ?? err}`);
  else log('failed (esbuild errors above)');
  process.exitCode = 1;
});
