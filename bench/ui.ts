/**
 * `npm run bench:ui`: how the web UI holds up against a big fleet. Starts a real embedded system in
 * this process (PGlite in memory) on a free loopback port, serving the built UI (web/dist), seeds
 * 1000 workers and 10,000 VMs (bench/ui-seed.ts), then measures in headless Chromium:
 *
 *   a. the dashboard, from navigation start until it shows 1000 workers (RUNS fresh pages);
 *   b. the workers page, until its count says 1000 and a row is visible (RUNS fresh pages);
 *   c. both pages under a firehose of RATE events/s for FIREHOSE_S s on the system's event bus:
 *      frame intervals, long tasks, input latency (a search keystroke until the count changes on the
 *      workers page; a key press until the next frame on the dashboard), and whether the page caught
 *      up with the bus's last event id within 3 s; then a nav-link click to the workers page;
 *   d. the initial JavaScript: the entry script and its modulepreloads, gzip -9.
 *
 * It is a report: it exits 0 when a target is missed (printed MISSED), 1 only when it could not run
 * (the system did not start, the seed did not read back, or DEADLINE_S passed). Without a built UI
 * it seeds, verifies and reports what it could not measure.
 *
 *   RUNS=5 RATE=500 FIREHOSE_S=10 DEADLINE_S=300 [UI_DIR=…] node --import tsx bench/ui.ts
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { cpus, freemem, platform, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { BrowserContext, Page } from 'playwright-core';
import { loadConfig } from '../src/config/load.ts';
import type { Config } from '../src/config/schema.ts';
import type { NewEvent } from '../src/domain/index.ts';
import type { EventBus } from '../src/ports/event-bus.ts';
import { type DevSystem, startDev } from '../src/runtime/dev.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { type BrowserSession, collectPageErrors, launchBrowser, screenshot } from '../test/harness/browser.ts';
import { type Fleet, fleetEvents, seedFleet, verifySeed } from './ui-seed.ts';

const WORKERS = 1000;
const VMS = 10_000;
const RUNS = Number(process.env.RUNS ?? 5);
const RATE = Number(process.env.RATE ?? 500);
const FIREHOSE_S = Number(process.env.FIREHOSE_S ?? 10);
const DEADLINE_S = Number(process.env.DEADLINE_S ?? 300);
const TARGET = { dashboardMs: 1500, workersMs: 1500, initialJsKb: 350, catchUpMs: 3000 };
/** A page that has not shown its data after this long counts as not rendering at all. */
const READY_TIMEOUT_MS = 20_000;
const INPUT_EVERY_MS = 500;
const TOKEN_KEY = 'aetherium.token';
/** UI_DIR: bench another build of the UI than web/dist (the control plane's `ui.dir`). */
const UI_DIR = process.env.UI_DIR ?? null;
const UI_INDEX = join(UI_DIR ?? fileURLToPath(new URL('../web/dist/', import.meta.url)), 'index.html');

// ── in-page code ──────────────────────────────────────────────────────────────────────────────
// Strings run by page.evaluate (CDP's Runtime.evaluate, which the page's CSP does not govern). Not
// page.waitForFunction: it evals its predicate inside the page, and the UI's CSP forbids eval. Not
// functions either: tsx's transform (keepNames) may add helpers the page lacks, and the project's
// tsconfig has no DOM library.

/**
 * The probe, installed once per document (every call below starts with it): a requestAnimationFrame
 * loop recording frame intervals, a long-task observer, the timestamps of the last key and pointer
 * events (event.timeStamp: when the browser got the input, on performance.now()'s clock) with, per
 * key press while running, the delay until its handler ran and until the next frame; and `when`,
 * which polls a named check once per frame and resolves with the page's time when it first holds.
 */
const PROBE = `(() => {
  if (window.__bench) return;
  const digits = (selector) => (document.querySelector(selector)?.textContent ?? '').replace(/[^0-9]/g, '');
  const text = (selector) => document.querySelector(selector)?.textContent ?? '';
  const checks = {
    dashboard: () => digits('[data-testid="total-workers"]') === '${WORKERS}',
    workers: () => digits('[data-testid="workers-count"]').includes('${WORKERS}')
      && [...document.querySelectorAll('[data-testid^="worker-row-"]')].some((r) => r.getClientRects().length > 0),
    countChanged: (before) => text('[data-testid="workers-count"]') !== before,
    lastEventId: (id) => document.querySelector('[data-testid="last-event-id"]')?.getAttribute('data-id') === id,
  };
  const s = { running: false, frames: [], last: 0, longTaskMs: 0, longTasks: 0, keys: [], lastKeyAt: 0, lastPointerAt: 0 };
  const loop = (t) => {
    if (!s.running) return;
    if (s.last) s.frames.push(t - s.last);
    s.last = t;
    requestAnimationFrame(loop);
  };
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) { s.longTaskMs += e.duration; s.longTasks++; }
  });
  addEventListener('pointerdown', (e) => { s.lastPointerAt = e.timeStamp; }, true);
  addEventListener('keydown', (e) => {
    s.lastKeyAt = e.timeStamp;
    if (!s.running) return;
    const handled = performance.now();
    requestAnimationFrame(() => s.keys.push({ handler: handled - e.timeStamp, frame: performance.now() - e.timeStamp }));
  }, true);
  window.__bench = {
    start() {
      Object.assign(s, { running: true, frames: [], last: 0, longTaskMs: 0, longTasks: 0, keys: [] });
      observer.observe({ type: 'longtask' });
      requestAnimationFrame(loop);
    },
    stop() {
      s.running = false;
      observer.disconnect();
      return { frames: s.frames, longTaskMs: s.longTaskMs, longTasks: s.longTasks, keys: s.keys };
    },
    text,
    lastEventId: () => document.querySelector('[data-testid="last-event-id"]')?.getAttribute('data-id') ?? null,
    when(name, arg, timeoutMs) {
      const deadline = performance.now() + timeoutMs;
      return new Promise((resolve, reject) => {
        const poll = () => {
          let holds = false;
          try { holds = checks[name](arg); } catch {}
          const now = performance.now();
          if (holds) return resolve({ at: now, sinceKey: now - s.lastKeyAt, sincePointer: now - s.lastPointerAt });
          if (now > deadline) return reject(new Error(name + ' did not hold within ' + timeoutMs + ' ms'));
          requestAnimationFrame(poll);
        };
        poll();
      });
    },
  };
})()`;

interface ProbeResult {
  frames: number[];
  longTaskMs: number;
  longTasks: number;
  keys: { handler: number; frame: number }[];
}

type Check = 'dashboard' | 'workers' | 'countChanged' | 'lastEventId';

/** When `check` held: the page's performance.now(), and the ms since the last key and pointer event. */
interface Held {
  at: number;
  sinceKey: number;
  sincePointer: number;
}

/** Runs `expression` (an expression on `window.__bench`) with the probe installed first. */
async function inPage<T>(page: Page, expression: string): Promise<T> {
  return (await page.evaluate(`${PROBE}, ${expression}`)) as T;
}

function when(page: Page, check: Check, arg: string | null = null, timeoutMs = READY_TIMEOUT_MS): Promise<Held> {
  return inPage<Held>(page, `window.__bench.when('${check}', ${JSON.stringify(arg)}, ${timeoutMs})`);
}

// ── the report ────────────────────────────────────────────────────────────────────────────────

type Verdict = 'PASS' | 'MISSED' | 'NOT MEASURED' | '';

interface Row {
  metric: string;
  result: string;
  target: string;
  verdict: Verdict;
}

const rows: Row[] = [];
const notes: string[] = [];

function report(metric: string, result: string, target = '', verdict: Verdict = ''): void {
  rows.push({ metric, result, target, verdict });
}

function notMeasured(metric: string, why: string, target = ''): void {
  report(metric, `not measured: ${why}`, target, 'NOT MEASURED');
}

function judge(ok: boolean): Verdict {
  return ok ? 'PASS' : 'MISSED';
}

function printReport(): void {
  const widths = [0, 0, 0].map((_, i) =>
    Math.max(...rows.map((r) => [r.metric, r.result, r.target][i]!.length), ['metric', 'result', 'target'][i]!.length),
  );
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  const out = [
    '',
    line(['metric', 'result', 'target', 'verdict']),
    line(widths.map((w) => '-'.repeat(w)).concat('-------')),
    ...rows.map((r) => line([r.metric, r.result, r.target, r.verdict])),
    '',
    ...notes.map((n) => `note: ${n}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

/** Nearest rank. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)] ?? Number.NaN;
}

const ms = (n: number) => `${Math.round(n)} ms`;
const spread = (values: number[]) =>
  `p50 ${ms(percentile(values, 0.5))}, p95 ${ms(percentile(values, 0.95))}, max ${ms(Math.max(...values))} (n=${values.length})`;

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

function machine(): string {
  const cpu = cpus();
  return (
    `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB ` +
    `(${(freemem() / 2 ** 30).toFixed(1)} free), ${platform()} ${release()}, node ${process.version}`
  );
}

// ── the system ────────────────────────────────────────────────────────────────────────────────

interface Bench {
  system: DevSystem | null;
  browser: BrowserSession | null;
  stateDir: string;
}

const bench: Bench = { system: null, browser: null, stateDir: mkdtempSync(join(tmpdir(), 'aetherium-bench-ui-')) };
// Whatever ends the process (a signal, Playwright's own SIGINT exit), the temporary directory goes.
process.once('exit', () => rmSync(bench.stateDir, { recursive: true, force: true }));

function benchConfig(stateDir: string): Config {
  return loadConfig({
    env: {},
    overrides: {
      store: { kind: 'pglite', pglite: { data_dir: 'memory://' } },
      log: { level: 'silent' },
      // Port 0: the kernel picks a free one, with no window for another process to take it.
      api_gateway: { host: '127.0.0.1', port: 0 },
      // The in-process worker is removed by the seed; it needs a driver to start at all.
      worker: { id: 'bench-local', drivers: { enabled: ['process'], allow_process: true, state_dir: stateDir } },
      ...(UI_DIR ? { ui: { dir: UI_DIR } } : {}),
    },
  });
}

/** Stops the browser, then the system; each step bounded, so a hung one cannot keep the process. */
async function cleanUp(): Promise<void> {
  const bounded = (work: Promise<void> | undefined, what: string) =>
    Promise.race([
      (work ?? Promise.resolve()).catch((err) => notes.push(`stopping the ${what} failed: ${errorText(err)}`)),
      new Promise<void>((resolve) => setTimeout(resolve, 15_000).unref()),
    ]);
  await bounded(bench.browser?.close(), 'browser');
  bench.browser = null;
  await bounded(bench.system?.stop(), 'system');
  bench.system = null;
}

// ── measurements ──────────────────────────────────────────────────────────────────────────────

/** A page with the token in sessionStorage before the app runs, as if signed in in this tab. */
async function preparedContext(session: BrowserSession, token: string): Promise<BrowserContext> {
  // about:blank has an opaque origin whose storage throws: only the app's own pages get the token.
  await session.context.addInitScript({
    content: `try { sessionStorage.setItem(${JSON.stringify(TOKEN_KEY)}, ${JSON.stringify(token)}); } catch {}`,
  });
  return session.context;
}

/** Opens `url` on a fresh page and returns the page's performance.now() when `ready` first holds. */
async function timeRender(session: BrowserSession, url: string, ready: Check, errors: string[]): Promise<number> {
  const page = await session.newPage();
  const pageErrors = collectPageErrors(page);
  try {
    await page.goto(url, { waitUntil: 'commit' });
    return (await when(page, ready)).at;
  } finally {
    errors.push(...pageErrors);
    await page.close();
  }
}

async function measureRender(
  session: BrowserSession,
  metric: string,
  url: string,
  ready: Check,
  targetMs: number,
  errors: string[],
): Promise<void> {
  const times: number[] = [];
  try {
    for (let i = 0; i < RUNS; i++) times.push(await timeRender(session, url, ready, errors));
  } catch (err) {
    notMeasured(metric, `${errorText(err)}${times.length ? ` (after ${times.length} runs)` : ''}`, `< ${targetMs} ms`);
    return;
  }
  const median = percentile(times, 0.5);
  report(
    metric,
    `median ${ms(median)}, max ${ms(Math.max(...times))} (runs: ${times.map((t) => Math.round(t)).join(', ')})`,
    `median < ${targetMs} ms`,
    judge(median < targetMs),
  );
}

const sleep = (n: number) => new Promise((resolve) => setTimeout(resolve, n));

/**
 * Publishes `count` events at `rate` per second, catching up after a slow tick rather than
 * drifting: at any moment about rate × elapsed have gone out. Returns the rate achieved.
 */
async function firehose(bus: EventBus, events: NewEvent[], rate: number): Promise<number> {
  const started = performance.now();
  let sent = 0;
  while (sent < events.length) {
    const due = Math.min(events.length, Math.floor(((performance.now() - started) / 1000) * rate));
    while (sent < due) await bus.publish(events[sent++]!);
    await sleep(5);
  }
  return sent / ((performance.now() - started) / 1000);
}

/** One search keystroke: the page's time from the key event until the count it renders changes. */
async function searchLatency(page: Page, key: string): Promise<number | null> {
  const before = await inPage<string>(page, `window.__bench.text('[data-testid="workers-count"]')`);
  await page.locator('[data-testid="workers-search"]').press(key);
  try {
    return (await when(page, 'countChanged', before, 2000)).sinceKey;
  } catch {
    return null; // the count did not change: the keystroke matched as many workers as before
  }
}

/** Every INPUT_EVERY_MS until `until`: alternately types "7" and deletes it (workers), or presses Shift. */
async function inputProbes(page: Page, kind: 'search' | 'key', until: number): Promise<(number | null)[]> {
  const latencies: (number | null)[] = [];
  for (let i = 0; performance.now() < until; i++) {
    const tick = performance.now();
    if (kind === 'search') latencies.push(await searchLatency(page, i % 2 === 0 ? '7' : 'Backspace'));
    else await page.keyboard.press('Shift');
    await sleep(Math.max(0, INPUT_EVERY_MS - (performance.now() - tick)));
  }
  if (kind === 'search' && latencies.length % 2 === 1)
    await page.locator('[data-testid="workers-search"]').press('Backspace');
  return latencies;
}

/** After the firehose: how long until the page shows the bus's last id (null: not within the target). */
async function catchUp(page: Page, lastId: number): Promise<{ ms: number | null; shown: string | null }> {
  const started = performance.now();
  try {
    await when(page, 'lastEventId', String(lastId), TARGET.catchUpMs);
    return { ms: performance.now() - started, shown: String(lastId) };
  } catch {
    return { ms: null, shown: await inPage<string | null>(page, 'window.__bench.lastEventId()').catch(() => null) };
  }
}

async function firehosePhase(
  page: Page,
  label: string,
  system: DevSystem,
  events: NewEvent[],
  input: 'search' | 'key',
): Promise<void> {
  await inPage(page, 'window.__bench.start()');
  const until = performance.now() + FIREHOSE_S * 1000;
  const [rate, latencies] = await Promise.all([
    firehose(system.engines.events, events, RATE),
    inputProbes(page, input, until),
  ]);
  const probe = await inPage<ProbeResult>(page, 'window.__bench.stop()');
  const lastId = (await system.engines.events.latestId()) ?? 0;
  const caught = await catchUp(page, lastId);

  report(`${label}: events published`, `${events.length} at ${Math.round(rate)}/s`, `${RATE}/s`);
  if (probe.frames.length > 0) report(`${label}: frame interval`, spread(probe.frames));
  else notMeasured(`${label}: frame interval`, 'no animation frame ran');
  report(`${label}: long tasks`, `${ms(probe.longTaskMs)} in ${probe.longTasks} tasks over ${FIREHOSE_S} s`);
  if (input === 'search') {
    const changed = latencies.filter((l): l is number => l !== null);
    const unchanged = latencies.length - changed.length;
    if (changed.length > 0) {
      report(`${label}: search keystroke → count`, `${spread(changed)}${unchanged ? `, ${unchanged} unchanged` : ''}`);
    } else
      notMeasured(`${label}: search keystroke → count`, `the count never changed (${latencies.length} keystrokes)`);
  } else if (probe.keys.length > 0) {
    report(`${label}: key press → next frame`, spread(probe.keys.map((k) => k.frame)));
    report(`${label}: key press → handler`, spread(probe.keys.map((k) => k.handler)));
  } else notMeasured(`${label}: key press → next frame`, 'no key event reached the page');
  report(
    `${label}: caught up with the bus`,
    caught.ms !== null
      ? `id ${lastId} shown after ${ms(caught.ms)}`
      : `showed ${caught.shown ?? 'nothing'}, bus at ${lastId}`,
    `within ${TARGET.catchUpMs} ms`,
    judge(caught.ms !== null),
  );
}

async function openReady(session: BrowserSession, url: string, ready: Check, errors: string[]): Promise<Page> {
  const page = await session.newPage();
  const pageErrors = collectPageErrors(page);
  page.on('close', () => errors.push(...pageErrors));
  await page.goto(url, { waitUntil: 'commit' });
  await when(page, ready);
  return page;
}

async function measureFirehose(
  session: BrowserSession,
  address: string,
  system: DevSystem,
  fleet: Fleet,
  errors: string[],
): Promise<void> {
  const perPhase = RATE * FIREHOSE_S;
  const events = fleetEvents(fleet, perPhase * 2);
  const phases = [
    { label: 'workers under firehose', url: `${address}/workers`, ready: 'workers' as const, input: 'search' as const },
    { label: 'dashboard under firehose', url: `${address}/`, ready: 'dashboard' as const, input: 'key' as const },
  ];
  for (const [i, phase] of phases.entries()) {
    let page: Page | null = null;
    try {
      page = await openReady(session, phase.url, phase.ready, errors);
      await firehosePhase(page, phase.label, system, events.slice(i * perPhase, (i + 1) * perPhase), phase.input);
      if (phase.input === 'key') await measureNavClick(page, address);
    } catch (err) {
      notMeasured(phase.label, errorText(err));
    } finally {
      await page?.close();
    }
  }
}

/** From the dashboard: the Workers nav link clicked until the workers page is ready, a few times. */
async function measureNavClick(page: Page, address: string): Promise<void> {
  const metric = 'nav click dashboard → workers ready';
  const times: number[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      if (i > 0) {
        await page.goto(`${address}/`, { waitUntil: 'commit' });
        await when(page, 'dashboard');
      }
      await page.getByRole('link', { name: 'Workers', exact: true }).first().click({ timeout: 3000 });
      times.push((await when(page, 'workers')).sincePointer);
    }
    report(metric, spread(times), '', '');
  } catch (err) {
    notMeasured(metric, errorText(err));
  }
}

/** The entry script and its modulepreloads, as index.html names them, each gzipped at level 9. */
async function measureInitialJs(address: string): Promise<void> {
  const metric = 'initial JS (gzip -9)';
  const target = `< ${TARGET.initialJsKb} KB gz`;
  try {
    const index = await fetch(`${address}/`);
    const html = await index.text();
    if (!index.ok) throw new Error(`GET / answered ${index.status}`);
    const base = new URL(/<base\s[^>]*href="([^"]*)"/i.exec(html)?.[1] ?? '/', `${address}/`);
    const urls = scriptUrls(html).map((u) => new URL(u, base).href);
    if (urls.length === 0) throw new Error('index.html names no module script');
    let raw = 0;
    let gz = 0;
    for (const url of new Set(urls)) {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`GET ${url} answered ${response.status}`);
      const body = Buffer.from(await response.arrayBuffer());
      raw += body.length;
      gz += gzipSync(body, { level: 9 }).length;
    }
    const kb = gz / 1024;
    report(
      metric,
      `${kb.toFixed(1)} KB gz (${(raw / 1024).toFixed(0)} KB raw, ${new Set(urls).size} files)`,
      target,
      judge(kb < TARGET.initialJsKb),
    );
  } catch (err) {
    notMeasured(metric, errorText(err), target);
  }
}

/** `<script type="module" src>` and `<link rel="modulepreload" href>`, whatever the attribute order. */
function scriptUrls(html: string): string[] {
  const attr = (tag: string, name: string) => new RegExp(`\\s${name}="([^"]*)"`, 'i').exec(tag)?.[1];
  const scripts = [...html.matchAll(/<script\b[^>]*>/gi)]
    .map((m) => m[0])
    .filter((tag) => attr(tag, 'type') === 'module')
    .map((tag) => attr(tag, 'src'));
  const preloads = [...html.matchAll(/<link\b[^>]*>/gi)]
    .map((m) => m[0])
    .filter((tag) => attr(tag, 'rel') === 'modulepreload')
    .map((tag) => attr(tag, 'href'));
  return [...scripts, ...preloads].filter((u): u is string => Boolean(u));
}

async function measureBrowser(address: string, system: DevSystem, fleet: Fleet): Promise<void> {
  bench.browser = await launchBrowser();
  const session = bench.browser;
  const context = await preparedContext(session, system.adminKey);
  let limited = 0;
  context.on('response', (response) => {
    if (response.status() === 429) limited++;
  });
  const errors: string[] = [];
  const first = await session.newPage();
  notes.push(`browser: ${await first.evaluate('navigator.userAgent')}`);
  await first.close();

  await measureRender(session, 'dashboard render', `${address}/`, 'dashboard', TARGET.dashboardMs, errors);
  await measureRender(session, 'workers page render', `${address}/workers`, 'workers', TARGET.workersMs, errors);
  await measureFirehose(session, address, system, fleet, errors);
  await fleetScreenshots(session, address);

  report('API answers 429 (rate limited)', String(limited), '0', judge(limited === 0));
  report('page errors', String(errors.length), '0', judge(errors.length === 0));
  for (const error of errors.slice(0, 10)) notes.push(error.split('\n')[0]!);
}

/** The seeded fleet as a user sees it (UPDATE_SCREENSHOTS=1 keeps them for the README). */
async function fleetScreenshots(session: BrowserSession, address: string): Promise<void> {
  const page = await session.newPage();
  try {
    for (const [name, path, selector] of [
      ['fleet-dashboard', '/', '[data-testid="total-workers"]'],
      ['fleet-workers', '/workers?zone=eu-west-1a', '[data-testid^="worker-row-"]'],
      ['fleet-heatmap', '/vms?view=heatmap', '[data-testid="heatmap"]'],
    ] as const) {
      await page.goto(`${address}${path}`);
      await page.locator(selector).first().waitFor({ timeout: 15_000 });
      await page.waitForTimeout(800); // charts draw after their chunk loads
      notes.push(`screenshot: ${await screenshot(page, name)}`);
    }
  } catch (err) {
    notes.push(`screenshots not taken: ${errorText(err)}`);
  } finally {
    await page.close();
  }
}

// ── main ──────────────────────────────────────────────────────────────────────────────────────

async function run(): Promise<void> {
  const log = (line: string) => process.stderr.write(`bench:ui: ${line}\n`);
  log(`machine: ${machine()}`);
  notes.push(`machine: ${machine()}`);
  const uiBuilt = existsSync(UI_INDEX);
  if (!uiBuilt) log(`${UI_INDEX} is missing (node scripts/build.mjs builds it): only the seed and the firehose run`);

  const config = benchConfig(bench.stateDir);
  let started = performance.now();
  bench.system = await startDev(config, silentLogger, { listen: true });
  const system = bench.system;
  const address = system.address!;
  log(`system up at ${address} in ${ms(performance.now() - started)}`);

  started = performance.now();
  const fleet = await seedFleet(system, config, { workers: WORKERS, vms: VMS });
  const seedMs = performance.now() - started;
  const checks = await verifySeed(address, system.adminKey, fleet);
  log(
    `seeded ${fleet.workers.length} workers and ${fleet.vms.length} VMs in ${(seedMs / 1000).toFixed(1)} s; read back: ${checks.join('; ')}`,
  );
  const s = fleet.byStatus;
  report(
    'seed',
    `${WORKERS} workers (${s.active} active, ${s.draining} draining, ${s.offline} offline), ${VMS} VMs in ${(seedMs / 1000).toFixed(1)} s`,
  );

  if (uiBuilt) {
    notes.push(
      "render times are the page's performance.now() (ms since navigation start) when the data is on screen; " +
        'runs 2+ have a warm HTTP cache',
    );
    await measureInitialJs(address);
    await measureBrowser(address, system, fleet);
  } else {
    const why = 'web/dist/index.html is missing';
    for (const metric of ['dashboard render', 'workers page render', 'firehose', 'initial JS (gzip -9)']) {
      notMeasured(metric, why);
    }
    // The firehose alone still tells whether the bus and the hub sustain the rate.
    const rate = await firehose(system.engines.events, fleetEvents(fleet, RATE * FIREHOSE_S), RATE);
    report('firehose without a page', `${RATE * FIREHOSE_S} events at ${Math.round(rate)}/s`, `${RATE}/s`);
  }
}

const deadline = setTimeout(() => {
  process.stderr.write(`bench:ui: not done after ${DEADLINE_S} s, giving up\n`);
  printReport();
  void cleanUp().finally(() => process.exit(1));
}, DEADLINE_S * 1000);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void cleanUp().finally(() => process.exit(128 + (signal === 'SIGINT' ? 2 : 15))));
}

let code = 0;
try {
  await run();
} catch (err) {
  process.stderr.write(`bench:ui: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  code = 1;
} finally {
  clearTimeout(deadline);
  await cleanUp();
}
printReport();
process.exit(code);
