/**
 * Sign-in through an OIDC identity provider, for the web UI: the authorization code flow with
 * PKCE, with the control plane as the client that exchanges the code. The browser is sent to the
 * provider's authorization endpoint (which it learns from `GET /auth/config`), comes back to
 * `<UI>/auth/callback` with a code, and posts the code and its PKCE verifier here; the control
 * plane redeems them at the token endpoint (with the client secret, when there is one, which so
 * never reaches a browser), checks that the token it got is one this server accepts (the same
 * JwtVerifier as every bearer JWT), and hands it to the page. No session is kept on the server:
 * the page holds the token, as it would an API key.
 */
import { AetheriumError, errorMessage } from '../../domain/index.ts';
import type { JwtIdentity, JwtVerifier } from './jwt.ts';

export interface OidcSettings {
  issuer: string;
  client_id: string;
  client_secret: string | null;
  scopes: string;
  token: 'id_token' | 'access_token';
  display_name: string | null;
}

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

/** What the UI needs to start a sign-in: no secret. */
export interface OidcPublicConfig {
  name: string;
  issuer: string;
  authorization_endpoint: string;
  client_id: string;
  scopes: string;
}

const TIMEOUT_MS = 5_000;
/** The discovery document changes rarely; a failed fetch is tried again on the next request. */
const DISCOVERY_TTL_MS = 5 * 60_000;

export class OidcClient {
  #discovery: { at: number; value: Discovery } | null = null;

  constructor(
    private readonly settings: OidcSettings,
    private readonly verifier: JwtVerifier | null,
  ) {}

  async publicConfig(): Promise<OidcPublicConfig> {
    const discovery = await this.discover();
    return {
      name: this.settings.display_name ?? new URL(this.settings.issuer).host,
      issuer: this.settings.issuer,
      authorization_endpoint: discovery.authorization_endpoint,
      client_id: this.settings.client_id,
      scopes: this.settings.scopes,
    };
  }

  /** Redeems an authorization code: the provider's token, verified as this server verifies any JWT. */
  async exchange(input: { code: string; code_verifier: string; redirect_uri: string }): Promise<{
    token: string;
    expires_in: number | null;
    identity: JwtIdentity;
  }> {
    const { token_endpoint } = await this.discover();
    const body = new URLSearchParams({
      grant_type: 'authorization_code',
      code: input.code,
      code_verifier: input.code_verifier,
      redirect_uri: input.redirect_uri,
      client_id: this.settings.client_id,
    });
    const headers: Record<string, string> = {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    };
    if (this.settings.client_secret) {
      // client_secret_basic (RFC 6749 §2.3.1): both parts form-encoded, then base64.
      const pair = `${encodeURIComponent(this.settings.client_id)}:${encodeURIComponent(this.settings.client_secret)}`;
      headers.authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
    }
    const answer = await this.fetchJson(token_endpoint, { method: 'POST', headers, body }, 'its token endpoint');
    if (!answer.ok) {
      const error = typeof answer.body.error === 'string' ? answer.body.error : `HTTP ${answer.status}`;
      const description = typeof answer.body.error_description === 'string' ? `: ${answer.body.error_description}` : '';
      // A refused code (used twice, expired, another verifier) is the caller's to retry: sign in again.
      if (answer.status >= 400 && answer.status < 500)
        throw new AetheriumError('unauthorized', `the identity provider refused the sign-in (${error}${description})`);
      throw new AetheriumError(
        'unavailable',
        `the identity provider failed to redeem the code (${error}${description})`,
      );
    }
    const token = answer.body[this.settings.token];
    if (typeof token !== 'string' || token === '')
      throw new AetheriumError(
        'unavailable',
        `the identity provider's answer has no ${this.settings.token} (api_gateway.auth.oidc.token)`,
      );
    if (!this.verifier)
      throw new AetheriumError(
        'unavailable',
        'OIDC sign-in is configured without api_gateway.auth.jwt to verify its tokens',
      );
    const identity = await this.verifier.verify(token);
    const expiresIn = answer.body.expires_in;
    return { token, expires_in: typeof expiresIn === 'number' ? expiresIn : null, identity };
  }

  private async discover(): Promise<Discovery> {
    if (this.#discovery && Date.now() - this.#discovery.at < DISCOVERY_TTL_MS) return this.#discovery.value;
    const url = `${this.settings.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`;
    const answer = await this.fetchJson(
      url,
      { method: 'GET', headers: { accept: 'application/json' } },
      'its discovery document',
    );
    const { authorization_endpoint, token_endpoint, issuer } = answer.body;
    if (!answer.ok || typeof authorization_endpoint !== 'string' || typeof token_endpoint !== 'string')
      throw new AetheriumError('unavailable', `the identity provider's discovery document (${url}) has no endpoints`);
    // OIDC Discovery §4.3: the document must be the issuer's own.
    if (typeof issuer === 'string' && issuer.replace(/\/+$/, '') !== this.settings.issuer.replace(/\/+$/, ''))
      throw new AetheriumError(
        'unavailable',
        `the discovery document at ${url} is for issuer ${issuer}, not ${this.settings.issuer}`,
      );
    const value = { authorization_endpoint, token_endpoint };
    this.#discovery = { at: Date.now(), value };
    return value;
  }

  private async fetchJson(
    url: string,
    init: RequestInit,
    what: string,
  ): Promise<{ ok: boolean; status: number; body: Record<string, unknown> }> {
    let response: Response;
    try {
      response = await fetch(url, { ...init, redirect: 'error', signal: AbortSignal.timeout(TIMEOUT_MS) });
    } catch (err) {
      throw new AetheriumError('unavailable', `the identity provider did not answer at ${what} (${errorMessage(err)})`);
    }
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      if (response.ok) throw new AetheriumError('unavailable', `the identity provider's ${what} did not answer JSON`);
      body = {};
    }
    return { ok: response.ok, status: response.status, body: body as Record<string, unknown> };
  }
}
