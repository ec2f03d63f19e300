/**
 * The client in Node: `new Aetherium()` finds the control plane and its credentials (settings.ts)
 * and speaks to it over node:http and `ws` (node-transport.ts).
 */
import { BaseClient } from './base-client.ts';
import { NodeTransport } from './node-transport.ts';
import { type ClientOptions, type ResolvedSettings, resolveSettings } from './settings.ts';

export { Events } from './base-client.ts';

const USER_AGENT = `aetherium-sdk (node ${process.versions.node})`;

export class Aetherium extends BaseClient {
  /** Where this client connects, and where each setting came from (never the token itself). */
  readonly settings: Readonly<Omit<ResolvedSettings, 'token' | 'ca'>> & { readonly hasToken: boolean };

  constructor(options: ClientOptions = {}) {
    const resolved = resolveSettings(options);
    const transport = new NodeTransport({
      apiUrl: resolved.apiUrl,
      token: resolved.token,
      ca: resolved.ca,
      requestTimeoutMs: resolved.requestTimeoutMs,
      userAgent: USER_AGENT,
    });
    super(transport, resolved.retries);
    const { token: _token, ca: _ca, ...visible } = resolved;
    this.settings = Object.freeze({ ...visible, hasToken: resolved.token !== null });
  }

  /** The control plane's base URL, as it was given. */
  override get apiUrl(): string {
    return this.settings.apiUrl;
  }
}
