/**
 * The web UI in a real browser (Debian's Chromium) against a real `aetherium dev`: sign in, see the
 * worker, create a VM from the UI and use its terminal, drain with the two-step confirmation, see
 * what the CLI does appear without a reload, cancel a task that waits and see why it waited, and
 * pause the live stream while the tab is hidden. Each step saves a screenshot.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrowserSession, collectPageErrors, launchBrowser, screenshot, signIn } from './harness/browser.ts';
import { type CliSystem, startCliSystem } from './harness/cli-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';

let s: CliSystem;
let browser: BrowserSession;
let page: Page;
let errors: string[];
let workerId: string;

const json = (text: string) => JSON.parse(text);

/** Makes the page believe its tab is hidden or shown again (what a switch of tabs does). */
async function setHidden(hidden: boolean): Promise<void> {
  // Page-side code is a string: it runs in the page, not in this process (whose types have no DOM).
  await page.evaluate(`window.__hidden = ${hidden}; document.dispatchEvent(new Event('visibilitychange'))`);
}

beforeAll(async () => {
  s = await startCliSystem();
  browser = await launchBrowser();
  // The page reads document.visibilityState; the test decides it (see setHidden).
  await browser.context.addInitScript({
    content: `window.__hidden = false;
      Object.defineProperty(document, 'visibilityState', { get: () => (window.__hidden ? 'hidden' : 'visible') });`,
  });
  page = await browser.newPage();
  const workers = (await s.get('/workers')) as { workers: { id: string }[] };
  workerId = workers.workers[0]!.id;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await s?.stop();
});

describe('the web UI, end to end', () => {
  it('signs in with the admin key and shows the worker', async () => {
    await signIn(page, s.api, s.adminKey);
    // Errors from here on are the app's: the probe before sign-in is a 401 by design.
    errors = collectPageErrors(page);
    await expect.poll(() => page.getByTestId('total-workers').textContent()).toBe('1');
    await expect.poll(() => page.getByTestId('identity').textContent()).toContain('admin');
    await screenshot(page, 'dashboard');
    await page.getByRole('link', { name: 'Workers', exact: true }).click();
    await page.getByTestId(`worker-row-${workerId}`).waitFor();
    await expect.poll(() => page.getByTestId('workers-count').textContent()).toBe('1 worker');
    await screenshot(page, 'workers');
  });

  it('keeps the workers filter in the URL, so a view can be shared', async () => {
    await page.getByTestId('workers-search').fill('no-such-worker');
    await expect.poll(() => page.getByTestId('workers-count').textContent()).toBe('0 of 1 worker');
    expect(new URL(page.url()).searchParams.get('q')).toBe('no-such-worker');
    await page.goto(`${s.api}/workers?status=active`);
    await page.getByTestId(`worker-row-${workerId}`).waitFor();
    await page.goto(`${s.api}/workers?status=draining`);
    await expect.poll(() => page.getByTestId('workers-count').textContent()).toBe('0 of 1 worker');
    await screenshot(page, 'workers-filtered');
  });

  it('creates a VM from the UI and shows it boot', async () => {
    await page.goto(`${s.api}/vms`);
    await page.getByRole('button', { name: 'Create VM' }).click();
    await page.getByLabel('Name').fill('ui-vm');
    await page.getByRole('button', { name: 'Create VM' }).last().click();
    await page.waitForURL(/\/vms\/[0-9a-f-]{36}$/);
    await expect.poll(() => page.getByTestId('vm-status').textContent(), { timeout: 60_000 }).toBe('running');
    await expect
      .poll(() => page.getByTestId('vm-phases').locator('[data-phase="running"]').getAttribute('data-state'))
      .toBe('done');
    // The boot waterfall: every phase in boot order, each after the first with its step time.
    const waterfall = page.getByTestId('boot-waterfall');
    await expect
      .poll(() => waterfall.locator('li').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-phase'))))
      .toEqual(['accepted', 'placed', 'delivered', 'driver_started', 'agent_ready', 'running']);
    expect(await waterfall.getByTestId('step').last().textContent()).toMatch(/^\+\d+ ms$|^\+\d/);
    await screenshot(page, 'vm');
    const vms = (await s.get('/vms?name=ui-vm')) as { vms: { status: string }[] };
    expect(vms.vms.map((v) => v.status)).toEqual(['running']);
  });

  it('runs echo hello in the terminal and shows its output and exit code', async () => {
    const terminal = page.getByTestId('terminal');
    await terminal.waitFor();
    await terminal.click();
    await page.keyboard.type('echo hello');
    await page.keyboard.press('Enter');
    const rows = page.locator('[data-testid="terminal"] .xterm-rows');
    await expect.poll(() => rows.innerText(), { timeout: 30_000 }).toMatch(/\[exit 0 /);
    const text = await rows.innerText();
    expect(text).toMatch(/^hello$/m);
    // A failing command's stderr and exit code, and Ctrl-C on one that would run for a minute.
    await page.keyboard.type('echo oops >&2; exit 3');
    await page.keyboard.press('Enter');
    await expect.poll(() => rows.innerText(), { timeout: 30_000 }).toMatch(/\[exit 3 /);
    expect(await rows.innerText()).toMatch(/^oops$/m);
    await page.keyboard.type('sleep 60');
    await page.keyboard.press('Enter');
    await page.waitForTimeout(1000);
    await page.keyboard.press('Control+C');
    await expect.poll(() => rows.innerText(), { timeout: 30_000 }).toMatch(/\[cancelled\]/);
    await screenshot(page, 'terminal');
    // The command ran in the VM: its record is on the server.
    const executions = json((await s.cli(['--json', 'vm', 'executions', 'ui-vm'])).stdout) as {
      executions: { command: string; args: string[]; stdout: string; exit_code: number }[];
    };
    expect(executions.executions.find((e) => e.args.includes('echo hello'))).toMatchObject({
      stdout: 'hello\n',
      exit_code: 0,
    });
  });

  it('shows a VM the CLI creates, without a reload and without polling', async () => {
    await page.goto(`${s.api}/vms`);
    await page.getByTestId('vm-row-ui-vm').waitFor();
    await page.waitForTimeout(1500); // the first connection's resync settles
    const requests: string[] = [];
    const onRequest = (r: { url(): string }) => {
      if (r.url().includes('/api/v1/')) requests.push(r.url());
    };
    page.on('request', onRequest);
    // Quiet: nothing changes, so the page asks nothing.
    await page.waitForTimeout(3000);
    expect(requests).toEqual([]);
    const created = await s.cli(['vm', 'create', '--name', 'cli-vm']);
    expect(created.code).toBe(0);
    await page.getByTestId('vm-row-cli-vm').waitFor({ timeout: 30_000 });
    page.off('request', onRequest);
    expect(requests.some((url) => url.includes('/api/v1/vms'))).toBe(true);
    await screenshot(page, 'vms-live');
  });

  it('drains a worker from its page, after a confirmation', async () => {
    await page.goto(`${s.api}/workers/${encodeURIComponent(workerId)}`);
    await page.getByRole('button', { name: 'Drain', exact: true }).click();
    await page.getByLabel('4 hours').check();
    await page.getByLabel('Message (kept in the audit log)').fill('ui test');
    await page.getByRole('button', { name: 'Drain…' }).click();
    // The second step says what will happen; nothing has yet.
    await page.getByText(/VMs still there in 4h are deleted/).waitFor();
    expect(((await s.get(`/workers/${workerId}`)) as { status: string }).status).toBe('active');
    await screenshot(page, 'drain-confirm');
    await page.getByRole('button', { name: 'Confirm drain' }).click();
    await page.getByText('Done: 1 of 1.').waitFor();
    await page.getByRole('button', { name: 'Close' }).click();
    await page.getByTestId('drain-state').waitFor();
    const worker = (await s.get(`/workers/${workerId}`)) as { status: string; drain: { message: string } };
    expect(worker).toMatchObject({ status: 'draining', drain: { message: 'ui test' } });
    await page.getByRole('button', { name: 'Stop drain and activate' }).click();
    await expect.poll(async () => ((await s.get(`/workers/${workerId}`)) as { status: string }).status).toBe('active');
    await page.getByRole('button', { name: 'Drain', exact: true }).waitFor();
  });

  it('shows a drain the CLI starts, without a reload', async () => {
    expect(await page.getByTestId('drain-state').count()).toBe(0);
    const drained = await s.cli(['workers', 'drain', workerId, '--deadline', '2h', '--message', 'from the cli']);
    expect(drained.code).toBe(0);
    await page.getByTestId('drain-state').getByText('from the cli').waitFor({ timeout: 15_000 });
    await page.getByText('draining', { exact: true }).first().waitFor();
    await screenshot(page, 'worker-draining');
    expect((await s.cli(['workers', 'activate', workerId])).code).toBe(0);
    await page.getByRole('button', { name: 'Drain', exact: true }).waitFor({ timeout: 15_000 });
  });

  it('says why a task waits, and cancels it', async () => {
    // More vCPUs than the worker has: the create waits, and the scheduler says why.
    const created = await s.cli(['--json', 'vm', 'create', '--name', 'too-big', '--vcpus', '64', '--no-wait']);
    expect(created.code).toBe(0);
    const taskId = (json(created.stdout) as { task_id: string }).task_id;
    await page.goto(`${s.api}/tasks?status=pending`);
    await page.getByTestId(`task-row-${taskId}`).waitFor({ timeout: 15_000 });
    await page.getByRole('link', { name: taskId }).click();
    const reason = page.getByTestId('pending-reason');
    await expect.poll(() => reason.textContent(), { timeout: 15_000 }).toMatch(/cpu|fit/i);
    const task = (await s.get(`/tasks/${taskId}`)) as { placement: { reason?: string } | null };
    expect(await reason.textContent()).toBe(task.placement?.reason ?? 'waiting for the scheduler');
    await screenshot(page, 'task-pending');
    await page.getByRole('button', { name: 'Cancel task' }).click();
    await page.getByRole('button', { name: 'Confirm cancel' }).click();
    await expect.poll(() => page.getByTestId('task-status').textContent(), { timeout: 15_000 }).toBe('cancelled');
    expect(((await s.get(`/tasks/${taskId}`)) as { status: string }).status).toBe('cancelled');
  });

  it('pauses the stream while the tab is hidden and catches up when it shows again', async () => {
    await page.goto(`${s.api}/vms`);
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
    await setHidden(true);
    await page.locator('[data-testid="connection-state"][data-state="paused"]').waitFor();
    const before = Number(await page.getByTestId('last-event-id').getAttribute('data-id'));
    expect((await s.cli(['vm', 'create', '--name', 'while-hidden'])).code).toBe(0);
    await page.waitForTimeout(1000);
    // Paused: no event reached the page.
    expect(Number(await page.getByTestId('last-event-id').getAttribute('data-id'))).toBe(before);
    await setHidden(false);
    await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
    await page.getByTestId('vm-row-while-hidden').waitFor({ timeout: 15_000 });
    await screenshot(page, 'caught-up');
    await eventuallyPasses(
      async () =>
        expect(Number(await page.getByTestId('last-event-id').getAttribute('data-id'))).toBeGreaterThan(before),
      10_000,
      100,
    );
  });

  it('raised no page errors', () => {
    expect(errors).toEqual([]);
  });
});
