/**
 * Where the client connects and with which credentials. Each setting is taken from the first place
 * that has it:
 *
 *   1. the options given to `new Aetherium({ apiUrl, token, caFile })`;
 *   2. the context named by the `context` option, when one is given;
 *   3. the environment: `AETHERIUM_API`, `AETHERIUM_TOKEN`, `AETHERIUM_CA_FILE`;
 *   4. the CLI's configuration file (config.ts), read only when neither an option nor the
 *      environment names the API: the context `AETHERIUM_CONTEXT` names, else its current context.
 *      A context's token and CA file are used only with its own API URL;
 *   5. the local dev system: `http://localhost:8080`, and the admin key `aetherium dev` wrote —
 *      the file `AETHERIUM_KEY_FILE` names, else `.aetherium/admin.key` in the working directory.
 *      That implicit key file is only sent to a loopback address (localhost, 127.0.0.0/8, ::1), so
 *      a machine's dev key never travels to a remote control plane by accident.
 */
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { type ConfigLocation, readTokenFile, resolveContext } from './config.ts';
import { ConfigError } from './errors.ts';

import { DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS } from './limits.ts';

export { DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS };
const DEV_KEY_FILE = '.aetherium/admin.key';

export interface ClientOptions {
  /** The control plane, e.g. https://cp.example.com:8080 (without /api/v1). */
  apiUrl?: string;
  /** An API key (`ae_…`) or a JWT. Sent only in the Authorization header, never in a URL. */
  token?: string;
  /** A PEM file with the CA that signed the control plane's certificate (https:// only). */
  caFile?: string;
  /** A context of the CLI configuration to use, instead of the current one. */
  context?: string;
  /** The timeout of each REST request, in ms (default 30 s). Waits and commands have their own. */
  requestTimeoutMs?: number;
  /** How many times a request that may safely be sent again is retried after a connection failure or a 503 (default 2). */
  retries?: number;
  /** The environment to read (default process.env), and the CLI configuration's location. */
  env?: NodeJS.ProcessEnv;
  configPath?: string;
  /** Where `.aetherium/admin.key` is looked for (default: the working directory). */
  cwd?: string;
}

export interface ResolvedSettings {
  apiUrl: string;
  token: string | null;
  ca: Buffer | undefined;
  caFile: string | null;
  /** Where each came from, for messages (`option`, `env`, `context:<name>`, `dev`). */
  source: { apiUrl: string; token: string; caFile: string };
  requestTimeoutMs: number;
  retries: number;
}

export function resolveSettings(options: ClientOptions = {}): ResolvedSettings {
  const env = options.env ?? process.env;
  const location: ConfigLocation = { env, ...(options.configPath ? { path: options.configPath } : {}) };
  const explicit = options.context !== undefined ? resolveContext(options.context, location) : null;
  // The configuration file is read only when neither an option nor the environment names the API.
  const context = explicit ?? (options.apiUrl || env.AETHERIUM_API ? null : resolveContext(undefined, location));
  const contextSource = context ? `context:${context.name}` : '';

  let apiUrl: string;
  let apiSource: string;
  if (options.apiUrl) [apiUrl, apiSource] = [options.apiUrl, 'option'];
  else if (explicit) [apiUrl, apiSource] = [explicit.api, contextSource];
  else if (env.AETHERIUM_API) [apiUrl, apiSource] = [env.AETHERIUM_API, 'env'];
  else if (context) [apiUrl, apiSource] = [context.api, contextSource];
  else [apiUrl, apiSource] = [DEFAULT_API_URL, 'dev'];
  // A context's token and CA belong to its API: they are used only with it.
  const own = context && apiSource === contextSource ? context : null;

  let token: string | null = null;
  let tokenSource = 'none';
  if (options.token) [token, tokenSource] = [options.token, 'option'];
  else if (explicit?.token) [token, tokenSource] = [explicit.token, contextSource];
  else if (!explicit && env.AETHERIUM_TOKEN) [token, tokenSource] = [env.AETHERIUM_TOKEN, 'env'];
  else if (own?.token) [token, tokenSource] = [own.token, contextSource];
  else if (env.AETHERIUM_KEY_FILE)
    [token, tokenSource] = [readTokenFile(resolve(options.cwd ?? '.', env.AETHERIUM_KEY_FILE)), 'key-file'];
  else if (isLoopback(apiUrl) && existsSync(resolve(options.cwd ?? '.', DEV_KEY_FILE)))
    [token, tokenSource] = [readTokenFile(resolve(options.cwd ?? '.', DEV_KEY_FILE)), 'dev'];

  let caFile: string | null = null;
  let caSource = 'none';
  if (options.caFile) [caFile, caSource] = [options.caFile, 'option'];
  else if (explicit?.caFile) [caFile, caSource] = [explicit.caFile, contextSource];
  else if (!explicit && env.AETHERIUM_CA_FILE) [caFile, caSource] = [env.AETHERIUM_CA_FILE, 'env'];
  else if (own?.caFile) [caFile, caSource] = [own.caFile, contextSource];

  let ca: Buffer | undefined;
  if (caFile) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw new ConfigError(`cannot read the CA file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? ''}`, {
        cause: err,
      });
    }
  }
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  if (!(requestTimeoutMs > 0)) throw new ConfigError('requestTimeoutMs must be a positive number of milliseconds');
  return {
    apiUrl,
    token,
    ca,
    caFile,
    source: { apiUrl: apiSource, token: tokenSource, caFile: caSource },
    requestTimeoutMs,
    retries: Math.max(0, Math.floor(options.retries ?? 2)),
  };
}

export function isLoopback(apiUrl: string): boolean {
  let host: string;
  try {
    host = new URL(apiUrl).hostname;
  } catch {
    return false;
  }
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
