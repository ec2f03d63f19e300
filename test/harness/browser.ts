/**
 * The browser the UI tests and `npm run bench:ui` drive: playwright-core on the system's Chromium
 * (Debian's /usr/bin/chromium, or CHROMIUM_PATH), headless, in a throwaway profile. Playwright's
 * own browser downloads are never used, so nothing is fetched at test time.
 *
 * Kill safety: Playwright starts Chromium as the leader of its own process group and SIGKILLs that
 * group from its `process.on('exit')` handler; Chromium also exits by itself when its debugging
 * pipe closes, which covers a test process that dies by SIGKILL. A persistent context gives no
 * handle on the ChildProcess, so child-processes.ts' `trackChild` cannot be used; what is left to
 * us is the profile directory, removed here on exit for every session not closed.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AxeBuilder } from '@axe-core/playwright';
import { type BrowserContext, chromium, type Page } from 'playwright-core';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-dev-shm-usage',
];

/** The WCAG levels the UI promises: A and AA, 2.0 and 2.1. */
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];
const BLOCKING_IMPACTS: ReadonlySet<string> = new Set(['serious', 'critical']);

export interface BrowserSession {
  context: BrowserContext;
  /** The profile directory, removed by close(). */
  userDataDir: string;
  newPage(): Promise<Page>;
  /** Closes the browser and removes its profile; safe to call twice. */
  close(): Promise<void>;
}

/** Profiles of sessions not closed yet: removed when the process exits. */
const openProfiles = new Set<string>();
let exitHookInstalled = false;

function removeProfilesOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Installed after the first launch, so it runs after Playwright's own exit handler killed Chromium.
  process.once('exit', () => {
    for (const dir of openProfiles) rmSync(dir, { recursive: true, force: true });
  });
}

export function chromiumPath(): string {
  return process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
}

export async function launchBrowser(): Promise<BrowserSession> {
  const executablePath = chromiumPath();
  if (!existsSync(executablePath)) {
    throw new Error(
      `Chromium not found at ${executablePath}: install it (apt-get install -y chromium) or set CHROMIUM_PATH to a Chromium binary`,
    );
  }
  const userDataDir = mkdtempSync(join(tmpdir(), 'aetherium-chromium-'));
  openProfiles.add(userDataDir);
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(userDataDir, {
      executablePath,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1440, height: 900 },
    });
  } catch (err) {
    openProfiles.delete(userDataDir);
    rmSync(userDataDir, { recursive: true, force: true });
    throw err;
  }
  removeProfilesOnExit();
  let closing: Promise<void> | null = null;
  return {
    context,
    userDataDir,
    newPage: () => context.newPage(),
    close: () =>
      (closing ??= (async () => {
        try {
          await context.close();
        } finally {
          openProfiles.delete(userDataDir);
          rmSync(userDataDir, { recursive: true, force: true, maxRetries: 3 });
        }
      })()),
  };
}

/** The screenshots the README shows (docs/screenshots/); every other one stays in test-results. */
const README_SCREENSHOTS: ReadonlySet<string> = new Set(['fleet-dashboard', 'terminal', 'task-pending']);

/**
 * Saves the viewport as test-results/screenshots/<name>.png, and, with UPDATE_SCREENSHOTS=1, the
 * README's pictures as docs/screenshots/<name>.png too. Returns the test-results path.
 */
export async function screenshot(page: Page, name: string): Promise<string> {
  const file = join(REPO, 'test-results', 'screenshots', `${name}.png`);
  mkdirSync(dirname(file), { recursive: true });
  const png = await page.screenshot({ path: file, fullPage: false });
  if (process.env.UPDATE_SCREENSHOTS === '1' && README_SCREENSHOTS.has(name)) {
    const docs = join(REPO, 'docs', 'screenshots', `${name}.png`);
    mkdirSync(dirname(docs), { recursive: true });
    writeFileSync(docs, png);
  }
  return file;
}

/** Throws when axe finds a serious or critical WCAG 2.1 A/AA violation on the page as it is now. */
export async function expectAccessible(page: Page, label: string): Promise<void> {
  const results = await new AxeBuilder({ page }).withTags(AXE_TAGS).analyze();
  const blocking = results.violations.filter((v) => v.impact && BLOCKING_IMPACTS.has(v.impact));
  if (blocking.length === 0) return;
  const lines = blocking.map((v) => {
    const targets = v.nodes
      .slice(0, 3)
      .map((n) => n.target.map(String).join(' '))
      .join(', ');
    const more = v.nodes.length > 3 ? ` (+${v.nodes.length - 3} more)` : '';
    return `  - ${v.id} [${v.impact}] ${v.help}: ${targets}${more}`;
  });
  throw new Error(
    `${label}: ${blocking.length} accessibility violation(s) (serious or critical):\n${lines.join('\n')}`,
  );
}

/** Signs in through the page's own form and waits until the live event stream is connected. */
export async function signIn(page: Page, baseUrl: string, token: string): Promise<void> {
  await page.goto(`${baseUrl.replace(/\/+$/, '')}/`);
  await page.getByLabel('API key or token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
}

/**
 * Uncaught page errors and console errors, as they happen, for a test to assert empty at its end.
 * Each entry says which it was and, for console errors, where.
 */
export function collectPageErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (err) => errors.push(`pageerror: ${err.stack ?? err.message}`));
  page.on('console', (message) => {
    if (message.type() !== 'error') return;
    const { url, lineNumber } = message.location();
    errors.push(`console.error: ${message.text()}${url ? ` (${url}:${lineNumber})` : ''}`);
  });
  return errors;
}
