/**
 * "Sign in with …": the OIDC authorization code flow with PKCE (RFC 7636). The page sends the
 * browser to the provider with a fresh verifier's challenge and a state, both kept in this tab's
 * sessionStorage; the provider sends it back to `<UI>/auth/callback`, where the page hands the code
 * and the verifier to the control plane (`POST /auth/oidc/token`), which redeems them and answers
 * the token the page then signs in with.
 */
import type { Aetherium, RouteOutput } from '@aetherium/sdk';

export type OidcConfig = NonNullable<RouteOutput<'authConfig'>['oidc']>;

const KEY = 'aetherium.oidc';
const CALLBACK = 'auth/callback';

interface Pending {
  state: string;
  verifier: string;
  returnTo: string;
}

function base64url(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

const random = (size: number) => base64url(crypto.getRandomValues(new Uint8Array(size)));
const base = () => new URL('.', document.baseURI);
const redirectUri = () => new URL(CALLBACK, base()).href;

/** Sends the browser to the provider; it comes back to the callback. */
export async function startOidc(config: OidcConfig): Promise<void> {
  if (!crypto.subtle) throw new Error('Signing in with an identity provider needs HTTPS (or localhost).');
  const verifier = random(32);
  const challenge = base64url(
    new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier))),
  );
  const here = new URL(location.href);
  const pending: Pending = {
    state: random(16),
    verifier,
    returnTo: here.pathname.slice(base().pathname.length) + here.search,
  };
  sessionStorage.setItem(KEY, JSON.stringify(pending));
  const url = new URL(config.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: config.scopes,
    state: pending.state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
  }).toString();
  location.assign(url.href);
}

/** True when this page load is the provider sending the browser back (read once: the address changes after). */
const atCallback = location.pathname === new URL(CALLBACK, base()).pathname;

export function isOidcCallback(): boolean {
  return atCallback;
}

let completing: Promise<string> | null = null;

/**
 * On the callback, once per page load (React may run an effect twice; the code works only once):
 * redeems the code for a token, and puts the address back to the page the
 * sign-in started from. Throws with what went wrong (the provider's refusal, a stale or forged state).
 */
export function completeOidc(client: Aetherium): Promise<string> {
  completing ??= redeem(client);
  return completing;
}

async function redeem(client: Aetherium): Promise<string> {
  const params = new URLSearchParams(location.search);
  const stored = sessionStorage.getItem(KEY);
  sessionStorage.removeItem(KEY);
  const pending: Pending | null = stored ? (JSON.parse(stored) as Pending) : null;
  history.replaceState(null, '', new URL(pending?.returnTo ?? '', base()).href);
  const error = params.get('error');
  if (error) throw new Error(`The identity provider did not sign you in: ${params.get('error_description') ?? error}`);
  const code = params.get('code');
  if (!code || !pending || params.get('state') !== pending.state)
    throw new Error('This sign-in was not started from this tab (or was started twice): sign in again.');
  const answer = await client.call('oidcToken', {
    body: { code, code_verifier: pending.verifier, redirect_uri: redirectUri() },
  });
  return answer.token;
}
