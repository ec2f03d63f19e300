/**
 * Every page of the web UI in a real browser against a real `aetherium dev`: no serious or
 * critical accessibility violation (axe, WCAG 2.1 AA) in the light and the dark theme, dialogs
 * included; a viewer key sees no control; a bad key is refused with a reason; the keyboard
 * shortcuts; and the whole UI served under a sub-path by a reverse proxy.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BrowserSession,
  collectPageErrors,
  expectAccessible,
  launchBrowser,
  screenshot,
  signIn,
} from './harness/browser.ts';
import { Aetherium } from '../src/sdk/index.ts';
import { type CliSystem, startCliSystem } from './harness/cli-system.ts';
import { type PrefixProxy, startPrefixProxy } from './harness/prefix-proxy.ts';

let s: CliSystem;
let browser: BrowserSession;
let proxy: PrefixProxy;
let workerId: string;
let vmId: string;
let pendingTaskId: string;
let viewerKey: string;

const json = (text: string) => JSON.parse(text);

/** A page's screenshot name, the same on every host: `/workers/<id>` is `workers-worker`. */
const slug = (path: string) => {
  const names: Record<string, string> = {
    [encodeURIComponent(workerId)]: 'worker',
    [vmId]: 'vm',
    [pendingTaskId]: 'task',
  };
  const [segments = '', query = ''] = path.split('?');
  const named = segments.split('/').map((segment) => names[segment] ?? segment);
  return (
    [...named, query]
      .join('-')
      .replace(/[^a-z0-9]+/gi, '-')
      .replace(/^-|-$/g, '') || 'dashboard'
  );
};

/** Each page, and what shows once it has loaded its data. */
function pages(): { path: string; ready: (page: Page) => Promise<unknown> }[] {
  return [
    { path: '/', ready: (p) => p.getByTestId('total-workers').getByText('1').waitFor() },
    { path: '/workers', ready: (p) => p.getByTestId(`worker-row-${workerId}`).waitFor() },
    {
      path: `/workers/${encodeURIComponent(workerId)}`,
      ready: (p) => p.getByRole('region', { name: 'Resource history (server-side)' }).locator('canvas').waitFor(),
    },
    { path: '/vms', ready: (p) => p.getByTestId('vm-row-a11y-vm').waitFor() },
    { path: '/vms?view=heatmap', ready: (p) => p.getByTestId('heatmap').waitFor() },
    { path: `/vms/${vmId}`, ready: (p) => p.getByTestId('terminal').locator('.xterm-rows').waitFor() },
    { path: '/tasks', ready: (p) => p.getByTestId(`task-row-${pendingTaskId}`).waitFor() },
    { path: `/tasks/${pendingTaskId}`, ready: (p) => p.getByTestId('placement').waitFor() },
    { path: '/control', ready: (p) => p.getByRole('button', { name: /Cancel \d+ tasks?…/ }).waitFor() },
    {
      path: '/plan',
      ready: async (p) => {
        await p.getByRole('button', { name: 'Ask the scheduler' }).click();
        await p.getByTestId('plan-verdict').waitFor();
      },
    },
    // The events page opens with the recent history: the setup's VMs and tasks are in it.
    { path: '/events', ready: (p) => p.getByTestId('events-log').getByText('vm.created').first().waitFor() },
    { path: '/no-such-page', ready: (p) => p.getByRole('heading', { name: 'No such page' }).waitFor() },
  ];
}

beforeAll(async () => {
  // Metrics every second: the worker page's timeline has a history to draw from the server.
  s = await startCliSystem({
    env: {
      AETHERIUM_API_GATEWAY__TRUST_PROXY: 'true',
      AETHERIUM_WORKER__METRICS_INTERVAL: '1s',
      // The least the server may keep, so that a paused page can fall behind it (the gap test).
      AETHERIUM_EVENTS__RETENTION: '100',
    },
  });
  browser = await launchBrowser();
  // A step that cannot happen fails with its own message, well before the test's timeout.
  browser.context.setDefaultTimeout(10_000);
  workerId = ((await s.get('/workers')) as { workers: { id: string }[] }).workers[0]!.id;
  vmId = json((await s.cli(['--json', 'vm', 'create', '--name', 'a11y-vm'])).stdout).vm.id;
  expect((await s.cli(['vm', 'exec', 'a11y-vm', '--', 'echo', 'for the commands list'])).code).toBe(0);
  pendingTaskId = json(
    (await s.cli(['--json', 'vm', 'create', '--name', 'waits', '--vcpus', '64', '--no-wait'])).stdout,
  ).task_id;
  viewerKey = json(
    (await s.cli(['--json', 'tokens', 'create', '--name', 'ui-viewer', '--role', 'viewer'])).stdout,
  ).token;
  proxy = await startPrefixProxy(s.port, '/aetherium');
}, 180_000);

afterAll(async () => {
  await proxy?.close();
  await browser?.close();
  await s?.stop();
});

describe('accessibility', () => {
  it('the sign-in page, and a refused key says why', async () => {
    const page = await browser.newPage();
    await page.goto(`${s.api}/`);
    await page.getByLabel('API key or token').waitFor();
    await expectAccessible(page, 'sign in');
    await page.getByLabel('API key or token').fill('ae_not_a_real_key');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').getByText('Sign-in failed').waitFor();
    await expectAccessible(page, 'sign in, refused');
    await screenshot(page, 'sign-in-refused');
    await page.close();
  });

  for (const theme of ['light', 'dark'] as const) {
    it(`every page in the ${theme} theme`, { timeout: 120_000 }, async () => {
      const page = await browser.newPage();
      await signIn(page, s.api, s.adminKey);
      const errors = collectPageErrors(page);
      // Page-side code is a string: it runs in the page, not in this process (whose types have no DOM).
      await page.evaluate(`localStorage.setItem('aetherium.theme', '${theme}')`);
      for (const { path, ready } of pages()) {
        await page.goto(`${s.api}${path}`);
        await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
        expect(await page.evaluate('document.documentElement.dataset.theme')).toBe(theme);
        await ready(page).catch((err: Error) => {
          throw new Error(`${path} did not load: ${err.message}`);
        });
        await expectAccessible(page, `${path} (${theme})`);
        await screenshot(page, `${theme}-${slug(path)}`);
      }
      expect(errors).toEqual([]);
      await page.evaluate(`localStorage.removeItem('aetherium.theme')`);
      await page.close();
    });
  }

  it('the dialogs: create a VM, drain, bulk drain, shortcuts', { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    await signIn(page, s.api, s.adminKey);
    await page.goto(`${s.api}/vms`);
    await page.getByRole('button', { name: 'Create VM' }).click();
    await page.getByRole('dialog', { name: 'Create a VM' }).waitFor();
    await expectAccessible(page, 'create VM dialog');
    await screenshot(page, 'create-vm');
    await page.keyboard.press('Escape');
    await page.goto(`${s.api}/workers/${encodeURIComponent(workerId)}`);
    await page.getByRole('button', { name: 'Drain', exact: true }).click();
    await expectAccessible(page, 'drain dialog');
    await page.getByRole('button', { name: 'Drain…' }).click();
    await page.getByRole('button', { name: 'Confirm drain' }).waitFor();
    await expectAccessible(page, 'drain confirmation');
    await page.getByRole('button', { name: 'Back' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel', exact: true }).click();
    // Bulk: the filter selects, the preview lists, the dialog lists again before anything happens.
    await page.goto(`${s.api}/control?zone=default`);
    await expect
      .poll(() => page.getByTestId('bulk-preview').textContent())
      .toMatch(/^1 worker matches: 1 can be drained/);
    await page.getByRole('button', { name: 'Drain 1 worker…' }).click();
    await page.getByRole('button', { name: 'Drain…' }).click();
    await page
      .getByRole('dialog', { name: `Drain worker ${workerId}` })
      .getByText('1 VM runs there now')
      .waitFor();
    await expectAccessible(page, 'bulk drain confirmation');
    await screenshot(page, 'bulk-drain');
    await page.getByRole('button', { name: 'Back' }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Cancel', exact: true }).click();
    expect(((await s.get(`/workers/${workerId}`)) as { status: string }).status).toBe('active');
    await page.close();
  });
});

describe('keyboard', () => {
  it('g then a letter goes to a page, / searches, ? lists the shortcuts', async () => {
    const page = await browser.newPage();
    await signIn(page, s.api, s.adminKey);
    await page.keyboard.press('g');
    await page.keyboard.press('w');
    await page.waitForURL(/\/workers$/);
    await page.getByTestId(`worker-row-${workerId}`).waitFor();
    await page.keyboard.press('/');
    expect(await page.evaluate(`document.activeElement?.getAttribute('data-testid')`)).toBe('workers-search');
    await page.keyboard.type('zzz');
    await expect.poll(() => page.getByTestId('workers-count').textContent()).toBe('0 of 1 worker');
    await page.locator('body').click({ position: { x: 5, y: 300 } });
    await page.keyboard.press('g');
    await page.keyboard.press('t');
    await page.waitForURL(/\/tasks$/);
    await page.keyboard.press('?');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor();
    await expectAccessible(page, 'shortcuts dialog');
    await screenshot(page, 'shortcuts');
    await page.keyboard.press('Escape');
    await page.getByRole('dialog', { name: 'Keyboard shortcuts' }).waitFor({ state: 'hidden' });
    await page.close();
  });
});

describe('roles', () => {
  it('a viewer key sees the cluster and no control', async () => {
    const page = await browser.newPage();
    await signIn(page, s.api, viewerKey);
    const errors = collectPageErrors(page);
    await expect.poll(() => page.getByTestId('identity').textContent()).toContain('viewer');
    await page.goto(`${s.api}/vms`);
    await page.getByTestId('vm-row-a11y-vm').waitFor();
    expect(await page.getByRole('button', { name: 'Create VM' }).count()).toBe(0);
    await page.goto(`${s.api}/vms/${vmId}`);
    await page.getByText('An operator key opens a terminal here.').waitFor();
    expect(await page.getByRole('button', { name: /^(Stop|Delete)$/ }).count()).toBe(0);
    await page.goto(`${s.api}/workers/${encodeURIComponent(workerId)}`);
    await page.getByText('An operator key sees the worker').waitFor();
    expect(await page.getByRole('button', { name: /Drain|Activate|eligible/ }).count()).toBe(0);
    await page.goto(`${s.api}/tasks/${pendingTaskId}`);
    await page.getByTestId('pending-reason').waitFor();
    expect(await page.getByRole('button', { name: 'Cancel task' }).count()).toBe(0);
    await page.goto(`${s.api}/control`);
    await page.getByText('Your role (viewer) can look but not control').waitFor();
    expect(
      await page
        .getByRole('button')
        .filter({ hasText: /Drain|Cancel \d/ })
        .count(),
    ).toBe(0);
    await screenshot(page, 'viewer-control');
    await expectAccessible(page, 'control (viewer)');
    expect(errors).toEqual([]);
    await page.close();
  });
});

describe('behind a reverse proxy, under /aetherium', () => {
  it('loads, links, deep-links and stays live under the prefix', async () => {
    const page = await browser.newPage();
    const errors = collectPageErrors(page);
    const outside: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(proxy.url)) outside.push(r.url());
    });
    await signIn(page, proxy.url, s.adminKey);
    await page.getByRole('link', { name: 'Workers', exact: true }).click();
    await page.waitForURL(`${proxy.url}/workers`);
    await page.getByTestId(`worker-row-${workerId}`).waitFor();
    await page.goto(`${proxy.url}/workers/${encodeURIComponent(workerId)}`);
    await page.getByRole('heading', { name: `Worker ${workerId}` }).waitFor();
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
    // Live through the proxy's WebSocket: a VM the CLI creates appears.
    await page.goto(`${proxy.url}/vms`);
    await page.getByTestId('vm-row-a11y-vm').waitFor();
    expect((await s.cli(['vm', 'create', '--name', 'via-proxy'])).code).toBe(0);
    await page.getByTestId('vm-row-via-proxy').waitFor({ timeout: 30_000 });
    expect(outside).toEqual([]);
    await screenshot(page, 'under-prefix');
    // The 401 of the first probe is the only console error: before the token was given.
    expect(errors.filter((e) => !e.includes('401'))).toEqual([]);
    await page.close();
  });
});

describe('a gap in the event stream', () => {
  /** The newest event id in the cluster, as the stream's hello says. */
  async function lastEventId(): Promise<number> {
    const client = new Aetherium({ apiUrl: s.api, token: s.adminKey });
    try {
      return await new Promise<number>((resolve, reject) => {
        const sub = client.events.subscribe({}, () => undefined, {
          onOpen: (info) => {
            sub.close();
            resolve(info.lastId ?? 0);
          },
          onError: (err) => reject(err),
        });
      });
    } finally {
      client.close();
    }
  }

  it('reloads every view from the REST API when the server no longer has the missed events', async () => {
    const page = await browser.newPage();
    // The page reads document.visibilityState; the test decides it.
    await page.addInitScript({
      content: `window.__hidden = false;
        Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });`,
    });
    const setHidden = (hidden: boolean) =>
      page.evaluate(`window.__hidden = ${hidden}; document.dispatchEvent(new Event('visibilitychange'))`);
    await signIn(page, s.api, s.adminKey);
    await page.getByRole('link', { name: 'VMs', exact: true }).click();
    await page.getByTestId('vm-row-a11y-vm').waitFor();
    await setHidden(true);
    await page.locator('[data-testid="connection-state"][data-state="paused"]').waitFor();
    const pausedAt = Number(await page.getByTestId('last-event-id').getAttribute('data-id'));
    // VMs that wait (too big for the worker: 202, pending) until more events passed than the server keeps.
    let made = 0;
    while ((await lastEventId()) - pausedAt <= 120 && made < 300) {
      const batch = Array.from({ length: 20 }, (_, i) =>
        fetch(`${s.api}/api/v1/vms`, {
          method: 'POST',
          headers: { authorization: `Bearer ${s.adminKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ name: `gap-${made + i}`, vcpus: 64 }),
        }).then((r) => expect(r.status).toBe(202)),
      );
      await Promise.all(batch);
      made += batch.length;
    }
    const total = ((await s.get('/vms?limit=1000')) as { total: number }).total;
    expect(total).toBeGreaterThanOrEqual(made);
    await setHidden(false);
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
    // Resynced from REST: the list has every VM, those whose events the page never saw included.
    await expect
      .poll(() => page.getByTestId('vms-count').textContent(), { timeout: 15_000 })
      .toContain(`of ${total} VMs`);
    await page.getByRole('link', { name: 'Events', exact: true }).click();
    await page.getByText(/missed events after \d+ .*: reloaded every view/).waitFor();
    await screenshot(page, 'gap-resynced');
    await page.close();
  }, 90_000);
});
