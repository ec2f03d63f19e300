/**
 * The CLI's way to the API: the SDK's client, built from the global flags (`--api`, `--token`,
 * `--ca-file`, `--context`). What the flags leave out the SDK resolves itself: AETHERIUM_API /
 * AETHERIUM_TOKEN / AETHERIUM_CA_FILE, then the current context of the client configuration, then
 * the local dev system and the admin key `aetherium dev` wrote. The SDK is loaded here, on the first
 * client call, never at start: `aetherium --version` and the process commands do not pay for it.
 */
import { existsSync } from 'node:fs';
import type { Aetherium } from '../sdk/index.ts';
import type { GlobalOptions } from './global-options.ts';

export type Client = Aetherium;

/** Where `aetherium dev` writes its key, relative to its working directory (the SDK's fallback). */
const DEV_KEY_FILE = '.aetherium/admin.key';

/** Where the last client's token came from (`option`, `env`, `context:prod`, `dev`, …), for messages. */
let tokenSource: string | null = null;

export async function connect(options: GlobalOptions): Promise<Aetherium> {
  const { Aetherium } = await import('../sdk/index.ts');
  const client = new Aetherium({
    ...(options.api ? { apiUrl: options.api } : {}),
    ...(options.token ? { token: options.token } : {}),
    ...(options.caFile ? { caFile: options.caFile } : {}),
    ...(options.context ? { context: options.context } : {}),
    env: clientEnv(process.env),
  });
  tokenSource = client.settings.source.token;
  return client;
}

/** A hint for a refused token: where it came from (never what it is). */
export function tokenHint(): string {
  switch (tokenSource) {
    case null:
      return '';
    case 'none':
      return ' (no token was given: --token, AETHERIUM_TOKEN or a context)';
    case 'option':
      return ' (the token of --token)';
    case 'env':
      return ' (the token of AETHERIUM_TOKEN)';
    case 'key-file':
      return ' (the key in AETHERIUM_KEY_FILE)';
    case 'dev':
      return ` (the dev key in ${DEV_KEY_FILE})`;
    default:
      return tokenSource.startsWith('context:') ? ` (the token of context ${tokenSource.slice(8)})` : '';
  }
}

/**
 * The environment the SDK reads. AETHERIUM_KEY_FILE names where `aetherium dev` writes its admin key,
 * and so may name a file that does not exist yet (dev not started, or started elsewhere): for the CLI
 * that means "no key here", not a configuration error, and the server's 401 then says how to get one.
 * Only when another dev key would be used in its place (`.aetherium/admin.key` here) is the variable
 * left for the SDK to refuse: the CLI never silently sends a key other than the one named.
 */
export function clientEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  if (!env.AETHERIUM_KEY_FILE || existsSync(env.AETHERIUM_KEY_FILE) || existsSync(DEV_KEY_FILE)) return env;
  const { AETHERIUM_KEY_FILE: _missing, ...rest } = env;
  return rest;
}

/**
 * The SDK's messages name its options (`apiUrl`, `caFile`); the CLI's user has flags. A few words
 * are swapped so that the advice names what to type.
 */
export function cliWording(message: string): string {
  return message
    .replace('(caFile, AETHERIUM_CA_FILE or', '(--ca-file, AETHERIUM_CA_FILE or')
    .replace(/\buse https:\/\//, 'use --api https://')
    .replace(
      'Set apiUrl, AETHERIUM_API or a context (aetherium context add)',
      'Pass --api, set AETHERIUM_API or use a context (aetherium context add)',
    );
}
