/**
 * The browser harness itself (test/harness/browser.ts), on pages it writes: the UI tests trust it
 * to fail on what it is meant to catch, so each check is seen failing once.
 */
import { existsSync } from 'node:fs';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrowserSession,
  collectPageErrors,
  expectAccessible,
  launchBrowser,
  screenshot,
} from './harness/browser.ts';

const page = (body: string) =>
  `<!doctype html><html lang="en"><head><title>harness</title></head><body><main>${body}</main></body></html>`;

describe('browser harness', () => {
  let session: BrowserSession;
  let tab: Page;

  beforeAll(async () => {
    session = await launchBrowser();
    tab = await session.newPage();
  });
  afterAll(() => session?.close());

  it('passes an accessible page and names what is wrong with an inaccessible one', async () => {
    await tab.setContent(page('<h1>Fleet</h1><button type="button">Drain</button>'));
    await expectAccessible(tab, 'good page');

    await tab.setContent(page('<h1>Fleet</h1><button type="button"></button><img src="x.png">'));
    const error = await expectAccessible(tab, 'bad page').then(
      () => null,
      (err: Error) => err,
    );
    expect(error?.message).toMatch(/^bad page: 2 accessibility violation/);
    expect(error?.message).toContain('button-name [critical]');
    expect(error?.message).toContain('image-alt [critical]');
  });

  it('collects uncaught errors and console errors', async () => {
    const other = await session.newPage();
    const errors = collectPageErrors(other);
    await other.setContent(
      page(`<script>console.error('boom'); setTimeout(() => { throw new Error('kaboom'); });</script>`),
    );
    await expect.poll(() => errors.length).toBe(2);
    expect(errors[0]).toMatch(/^console\.error: boom/);
    expect(errors[1]).toMatch(/^pageerror: Error: kaboom/);
    await other.close();
  });

  it('saves screenshots under test-results/', async () => {
    await tab.setContent(page('<h1>Shot</h1>'));
    const file = await screenshot(tab, 'harness-self-test');
    expect(file).toMatch(/test-results\/screenshots\/harness-self-test\.png$/);
    expect(existsSync(file)).toBe(true);
  });

  it('removes its profile on close, and closes twice without complaint', async () => {
    const extra = await launchBrowser();
    expect(existsSync(extra.userDataDir)).toBe(true);
    await extra.close();
    await extra.close();
    expect(existsSync(extra.userDataDir)).toBe(false);
  });
});

it('says how to install Chromium when it is missing', async () => {
  const saved = process.env.CHROMIUM_PATH;
  process.env.CHROMIUM_PATH = '/nonexistent/chromium';
  try {
    await expect(launchBrowser()).rejects.toThrow(/apt-get install -y chromium/);
  } finally {
    if (saved === undefined) delete process.env.CHROMIUM_PATH;
    else process.env.CHROMIUM_PATH = saved;
  }
});
