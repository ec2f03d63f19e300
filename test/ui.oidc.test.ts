/**
 * "Sign in with …" in the web UI against a real OpenID Provider (node-oidc-provider, certified),
 * through a real `aetherium dev` configured for it: the authorization code flow with PKCE, the
 * code redeemed by the control plane with the client secret (which never reaches the page), the
 * provider's ID token accepted as the bearer with its role claim, the page the sign-in started
 * from restored; and the ways it can fail: the provider refusing, a forged state, a bad code.
 */
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrowserSession, collectPageErrors, launchBrowser, screenshot } from './harness/browser.ts';
import { type CliSystem, startCliSystem } from './harness/cli-system.ts';
import { startOidcProvider, type TestOidcProvider } from './harness/oidc-provider.ts';
import { freePort } from './harness/processes.ts';

const CLIENT_ID = 'aetherium-ui';
const CLIENT_SECRET = 'a-client-secret-only-the-control-plane-holds';

let s: CliSystem;
let idp: TestOidcProvider;
let browser: BrowserSession;

beforeAll(async () => {
  // The provider's address goes into the control plane's configuration, and the control plane's
  // callback into the provider's client: the port first, the provider once the callback is known.
  const idpPort = await freePort();
  const issuer = `http://127.0.0.1:${idpPort}`;
  s = await startCliSystem({
    env: {
      AETHERIUM_API_GATEWAY__AUTH__JWT__JWKS_URL: `${issuer}/jwks`,
      AETHERIUM_API_GATEWAY__AUTH__JWT__ISSUER: issuer,
      AETHERIUM_API_GATEWAY__AUTH__JWT__AUDIENCE: CLIENT_ID,
      AETHERIUM_API_GATEWAY__AUTH__OIDC__ISSUER: issuer,
      AETHERIUM_API_GATEWAY__AUTH__OIDC__CLIENT_ID: CLIENT_ID,
      AETHERIUM_API_GATEWAY__AUTH__OIDC__CLIENT_SECRET: CLIENT_SECRET,
      AETHERIUM_API_GATEWAY__AUTH__OIDC__SCOPES: 'openid profile',
      AETHERIUM_API_GATEWAY__AUTH__OIDC__DISPLAY_NAME: 'Test IdP',
    },
  });
  idp = await startOidcProvider({
    port: idpPort,
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: `${s.api}/auth/callback`,
    roles: { ada: 'admin', bob: 'viewer' },
  });
  browser = await launchBrowser();
  browser.context.setDefaultTimeout(15_000);
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await idp?.close();
  await s?.stop();
});

/** Through the provider's own login and consent pages, as a user does. */
async function signInAt(page: Page, path: string, login: string): Promise<void> {
  await page.goto(`${s.api}${path}`);
  await page.getByRole('button', { name: 'Sign in with Test IdP' }).click();
  await page.waitForURL(`${idp.issuer}/**`);
  await page.locator('input[name="login"]').fill(login);
  await page.locator('input[name="password"]').fill('anything');
  await page.getByRole('button', { name: 'Sign-in' }).click();
  await page.getByRole('button', { name: 'Continue' }).click();
  await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor();
}

describe('OIDC sign-in', () => {
  it('tells the page how to sign in, and never the client secret', async () => {
    const res = await fetch(`${s.api}/api/v1/auth/config`);
    expect(res.status).toBe(200);
    const text = await res.text();
    expect(JSON.parse(text)).toEqual({
      auth_enabled: true,
      oidc: {
        name: 'Test IdP',
        issuer: idp.issuer,
        authorization_endpoint: `${idp.issuer}/auth`,
        client_id: CLIENT_ID,
        scopes: 'openid profile',
      },
    });
    expect(text).not.toContain(CLIENT_SECRET);
  });

  it('signs in through the provider with PKCE, with the role of its token, back on the page it started from', async () => {
    const page = await browser.newPage();
    const authorize: URL[] = [];
    page.on('request', (r) => {
      if (r.url().startsWith(`${idp.issuer}/auth?`)) authorize.push(new URL(r.url()));
    });
    await signInAt(page, '/workers', 'ada');
    const errors = collectPageErrors(page);
    expect(new URL(page.url()).pathname).toBe('/workers');
    await expect.poll(() => page.getByTestId('identity').textContent()).toBe('User ada admin');
    const query = authorize[0]!.searchParams;
    expect(query.get('code_challenge_method')).toBe('S256');
    expect(query.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(query.get('redirect_uri')).toBe(`${s.api}/auth/callback`);
    expect(query.get('client_secret')).toBeNull();
    // The token the page holds is the provider's, and the API takes it like any bearer.
    const token = await page.evaluate(`sessionStorage.getItem('aetherium.token')`);
    expect(String(token)).toMatch(/^eyJ/);
    const me = await fetch(`${s.api}/api/v1/auth/whoami`, { headers: { authorization: `Bearer ${token}` } });
    expect(await me.json()).toMatchObject({ kind: 'jwt', id: 'ada', role: 'admin' });
    await screenshot(page, 'oidc-signed-in');
    expect(errors).toEqual([]);
    await page.close();
  });

  it("gives a viewer the viewer's UI", async () => {
    // Another user: end ada's session at the provider (its cookie), as signing out there would.
    await browser.context.clearCookies();
    const page = await browser.newPage();
    await signInAt(page, '/vms', 'bob');
    await expect.poll(() => page.getByTestId('identity').textContent()).toBe('User bob viewer');
    expect(await page.getByRole('button', { name: 'Create VM' }).count()).toBe(0);
    await page.close();
  });

  it('says why when the provider refuses, or the state is not this tab’s', async () => {
    const page = await browser.newPage();
    await page.goto(`${s.api}/auth/callback?error=access_denied&error_description=the%20user%20said%20no`);
    await page.getByText('The identity provider did not sign you in: the user said no').waitFor();
    expect(new URL(page.url()).pathname).toBe('/');
    await page.goto(`${s.api}/auth/callback?code=forged&state=not-ours`);
    await page.getByText('This sign-in was not started from this tab').waitFor();
    await screenshot(page, 'oidc-refused');
    await page.close();
  });

  it('answers a code the provider refuses with 401 and its reason, bad input with 400', async () => {
    const post = (body: unknown) =>
      fetch(`${s.api}/api/v1/auth/oidc/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const refused = await post({
      code: 'not-a-code-it-issued',
      code_verifier: 'v'.repeat(43),
      redirect_uri: `${s.api}/auth/callback`,
    });
    expect(refused.status).toBe(401);
    const error = ((await refused.json()) as { error: { code: string; message: string } }).error;
    expect(error.code).toBe('unauthorized');
    expect(error.message).toMatch(/the identity provider refused the sign-in \(invalid_grant/);
    const bad = await post({ code: 'x', code_verifier: 'short', redirect_uri: 'not a url' });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe('validation_failed');
  });
});
