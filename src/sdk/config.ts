/**
 * The client configuration file, kubectl-like: named contexts (a control plane's URL and how to
 * authenticate to it) and the current one. The CLI's `aetherium context add | use | list | remove`
 * call the functions here; `new Aetherium()` reads it (see settings.ts).
 *
 *   current-context: prod
 *   contexts:
 *     prod:
 *       api: https://cp.example.com:8080
 *       token-file: /home/me/.config/aetherium/prod.token   # preferred: the secret stays in its own file
 *       ca-file: /home/me/.config/aetherium/prod-ca.pem
 *     lab:
 *       api: http://10.0.0.5:8080
 *       token: ae_…                                          # inline (the file is 0600 then)
 *
 * Where: `$AETHERIUM_CLIENT_CONFIG`, else `$XDG_CONFIG_HOME/aetherium/config.yaml`, else
 * `~/.config/aetherium/config.yaml`. (Not `$AETHERIUM_CONFIG`: that names the server's YAML
 * configuration, and `context add` would rewrite it.)
 *
 * Safety: the file is written atomically (a temporary file in the same directory, fsync, rename)
 * with mode 0600 in a directory created 0700. A token is read only from a file no one else may read
 * (no group or other permission bits, as ssh requires of a private key); a config file holding an
 * inline token must be private too. A file with keys this format does not know is never rewritten,
 * so pointing the variable at some other YAML file cannot clobber it. Nothing here prints a token.
 */
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type * as Yaml from 'yaml';
import { ConfigError } from './errors.ts';

export interface ContextEntry {
  api: string;
  'token-file'?: string;
  token?: string;
  'ca-file'?: string;
}

export interface ClientConfigFile {
  'current-context'?: string | null;
  contexts: Record<string, ContextEntry>;
}

/** A context as `listContexts` shows it: never its token, only whether it has one. */
export interface ContextInfo {
  name: string;
  api: string;
  tokenFile: string | null;
  /** An inline `token` is set (its value is never shown). */
  hasInlineToken: boolean;
  caFile: string | null;
  current: boolean;
}

export interface ConfigLocation {
  env?: NodeJS.ProcessEnv;
  /** An explicit file, instead of the environment's. */
  path?: string;
}

/** `yaml` is loaded only when a configuration file is read or written: most calls never need it. */
let yamlModule: typeof Yaml | null = null;
const yaml = (): typeof Yaml => (yamlModule ??= createRequire(import.meta.url)('yaml') as typeof Yaml);

const CONTEXT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;
const TOP_KEYS = new Set(['current-context', 'contexts']);
const CONTEXT_KEYS = new Set(['api', 'token-file', 'token', 'ca-file']);

/** Where the configuration file is (whether or not it exists). */
export function configPath(location: ConfigLocation = {}): string {
  if (location.path) return resolve(location.path);
  const env = location.env ?? process.env;
  if (env.AETHERIUM_CLIENT_CONFIG) return resolve(env.AETHERIUM_CLIENT_CONFIG);
  const base =
    env.XDG_CONFIG_HOME && isAbsolute(env.XDG_CONFIG_HOME) ? env.XDG_CONFIG_HOME : join(homedir(), '.config');
  return join(base, 'aetherium', 'config.yaml');
}

/** The file's contents; an empty configuration when there is no file. */
export function readConfig(location: ConfigLocation = {}): ClientConfigFile {
  const path = configPath(location);
  if (!existsSync(path)) return { 'current-context': null, contexts: {} };
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read the client configuration ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = yaml().parse(text) ?? {};
  } catch (err) {
    throw new ConfigError(`the client configuration ${path} is not valid YAML: ${(err as Error).message}`);
  }
  const config = validate(doc, path);
  if (Object.values(config.contexts).some((c) => c.token !== undefined)) requirePrivate(path, 'holds a token and');
  return config;
}

function validate(doc: unknown, path: string): ClientConfigFile {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new ConfigError(`the client configuration ${path} must be a mapping with current-context and contexts`);
  const record = doc as Record<string, unknown>;
  const unknown = Object.keys(record).filter((k) => !TOP_KEYS.has(k));
  if (unknown.length > 0)
    throw new ConfigError(
      `${path} is not an Aetherium client configuration (unknown keys: ${unknown.join(', ')}); ` +
        'is AETHERIUM_CLIENT_CONFIG pointing at the server configuration?',
    );
  const current = record['current-context'];
  if (current !== undefined && current !== null && typeof current !== 'string')
    throw new ConfigError(`${path}: current-context must be a context name`);
  const contexts: Record<string, ContextEntry> = {};
  const raw = record.contexts ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    throw new ConfigError(`${path}: contexts must be a mapping of names to { api, token-file, ca-file }`);
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null)
      throw new ConfigError(`${path}: context ${name} must be a mapping`);
    const entry = value as Record<string, unknown>;
    const extra = Object.keys(entry).filter((k) => !CONTEXT_KEYS.has(k));
    if (extra.length > 0) throw new ConfigError(`${path}: context ${name} has unknown keys: ${extra.join(', ')}`);
    if (typeof entry.api !== 'string') throw new ConfigError(`${path}: context ${name} needs api: URL`);
    for (const key of ['token-file', 'token', 'ca-file'] as const) {
      if (entry[key] !== undefined && typeof entry[key] !== 'string')
        throw new ConfigError(`${path}: context ${name}: ${key} must be a string`);
    }
    const { api, token } = entry;
    const tokenFile = entry['token-file'];
    const caFile = entry['ca-file'];
    contexts[name] = {
      api,
      ...(typeof tokenFile === 'string' ? { 'token-file': tokenFile } : {}),
      ...(typeof token === 'string' ? { token } : {}),
      ...(typeof caFile === 'string' ? { 'ca-file': caFile } : {}),
    };
  }
  return { 'current-context': (current as string | null | undefined) ?? null, contexts };
}

/** Writes the whole file atomically, 0600, in a 0700 directory it creates when missing. */
export function writeConfig(config: ClientConfigFile, location: ConfigLocation = {}): string {
  const path = configPath(location);
  const dir = dirname(path);
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(path)) {
    // Re-validate what is there: a file of another kind is never replaced.
    let doc: unknown;
    try {
      doc = yaml().parse(readFileSync(path, 'utf8')) ?? {};
    } catch (err) {
      throw new ConfigError(`refusing to replace ${path}: it is not valid YAML (${(err as Error).message})`);
    }
    validate(doc, path);
  }
  const text = `# Aetherium client configuration (aetherium context add | use | list | remove)\n${yaml().stringify(config)}`;
  const tmp = join(dir, `.config.yaml.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(tmp, path);
  } catch (err) {
    unlinkSync(tmp);
    throw new ConfigError(`cannot write ${path}: ${(err as Error).message}`, { cause: err });
  }
  return path;
}

/** Refuses a file (token file, or a config file with inline tokens) that others may read or change. */
export function requirePrivate(path: string, what = 'holds a token and'): void {
  if (process.platform === 'win32') return;
  let mode: number;
  try {
    mode = statSync(path).mode;
  } catch (err) {
    throw new ConfigError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, {
      cause: err,
    });
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(
      `${path} ${what} is accessible by other users (mode ${(mode & 0o777).toString(8).padStart(3, '0')}); ` +
        `make it private: chmod 600 ${path}`,
    );
  }
}

/** The token in a file: private (see requirePrivate), trimmed, not empty. */
export function readTokenFile(path: string): string {
  requirePrivate(path, 'holds a token and');
  let token: string;
  try {
    token = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(`cannot read the token file ${path}: ${(err as NodeJS.ErrnoException).code ?? ''}`, {
      cause: err,
    });
  }
  if (!token) throw new ConfigError(`the token file ${path} is empty`);
  return token;
}

export interface AddContextOptions extends ConfigLocation {
  api: string;
  /** A file that holds the token (preferred). Stored as an absolute path. */
  tokenFile?: string | undefined;
  /** The token itself, stored in the configuration file (0600). Prefer `tokenFile`. */
  token?: string | undefined;
  caFile?: string | undefined;
  /** Make it the current context (default: only when there is none). */
  use?: boolean;
  /** Replace a context of the same name (default: refuse). */
  overwrite?: boolean;
}

/** Adds (or with `overwrite`, replaces) a context. Checks the URL and that the files can be read. */
export function addContext(name: string, options: AddContextOptions): ContextInfo {
  if (!CONTEXT_NAME.test(name))
    throw new ConfigError(`a context name is 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit`);
  let url: URL;
  try {
    url = new URL(options.api);
  } catch {
    throw new ConfigError(
      `--api must be a URL such as https://cp.example.com:8080, not ${JSON.stringify(options.api)}`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new ConfigError(`--api must be http:// or https://, not ${url.protocol}`);
  if (url.username || url.password) throw new ConfigError('--api must not carry credentials: use a token file');
  if (options.token !== undefined && options.tokenFile !== undefined)
    throw new ConfigError('give a token file or a token, not both');
  const entry: ContextEntry = { api: url.href.replace(/\/+$/, '') };
  if (options.tokenFile !== undefined) {
    const file = resolve(options.tokenFile);
    readTokenFile(file); // fails now, with the reason, rather than at the first call
    entry['token-file'] = file;
  }
  if (options.token !== undefined) {
    if (!options.token.trim()) throw new ConfigError('the token is empty');
    entry.token = options.token.trim();
  }
  if (options.caFile !== undefined) {
    const file = resolve(options.caFile);
    try {
      readFileSync(file);
    } catch (err) {
      throw new ConfigError(`cannot read the CA file ${file}: ${(err as NodeJS.ErrnoException).code ?? ''}`);
    }
    entry['ca-file'] = file;
  }
  const config = readConfig(options);
  if (config.contexts[name] && !options.overwrite)
    throw new ConfigError(`a context named ${name} already exists (remove it first, or overwrite it)`);
  config.contexts[name] = entry;
  if (options.use || !config['current-context']) config['current-context'] = name;
  writeConfig(config, options);
  return infoOf(name, entry, config['current-context'] === name);
}

/** Makes `name` the current context. */
export function useContext(name: string, location: ConfigLocation = {}): ContextInfo {
  const config = readConfig(location);
  const entry = config.contexts[name];
  if (!entry) throw new ConfigError(unknownContext(name, config, location));
  config['current-context'] = name;
  writeConfig(config, location);
  return infoOf(name, entry, true);
}

/** Removes a context; the current context is unset when it was this one. False when there was none. */
export function removeContext(name: string, location: ConfigLocation = {}): boolean {
  const config = readConfig(location);
  if (!config.contexts[name]) return false;
  delete config.contexts[name];
  if (config['current-context'] === name) config['current-context'] = null;
  writeConfig(config, location);
  return true;
}

/** Every context, by name, with which one is current. Never a token. */
export function listContexts(location: ConfigLocation = {}): ContextInfo[] {
  const config = readConfig(location);
  return Object.entries(config.contexts)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, entry]) => infoOf(name, entry, config['current-context'] === name));
}

/** The current context as the file says (`current-context`), or null. */
export function currentContext(location: ConfigLocation = {}): ContextInfo | null {
  const config = readConfig(location);
  const name = config['current-context'];
  const entry = name ? config.contexts[name] : undefined;
  return name && entry ? infoOf(name, entry, true) : null;
}

export interface ResolvedContext {
  name: string;
  api: string;
  token: string | null;
  caFile: string | null;
}

/**
 * The context to use: `name` (which must exist), else `AETHERIUM_CONTEXT` (which must exist), else
 * the file's current context; null when none is chosen. Reads its token (from its file).
 */
export function resolveContext(name: string | undefined, location: ConfigLocation = {}): ResolvedContext | null {
  const env = location.env ?? process.env;
  const wanted = name ?? (env.AETHERIUM_CONTEXT || undefined);
  const config = readConfig(location);
  const chosen = wanted ?? config['current-context'] ?? undefined;
  if (!chosen) return null;
  const entry = config.contexts[chosen];
  if (!entry) {
    if (wanted) throw new ConfigError(unknownContext(chosen, config, location));
    return null; // a current-context left pointing nowhere: as if none were set
  }
  const base = dirname(configPath(location));
  const token =
    entry['token-file'] !== undefined
      ? readTokenFile(resolve(base, entry['token-file']))
      : entry.token !== undefined
        ? entry.token
        : null;
  return {
    name: chosen,
    api: entry.api,
    token,
    caFile: entry['ca-file'] === undefined ? null : resolve(base, entry['ca-file']),
  };
}

function unknownContext(name: string, config: ClientConfigFile, location: ConfigLocation): string {
  const names = Object.keys(config.contexts);
  return `no context named ${name} in ${configPath(location)}${names.length ? ` (there are: ${names.join(', ')})` : ' (it has none: aetherium context add NAME --api URL --token-file FILE)'}`;
}

function infoOf(name: string, entry: ContextEntry, current: boolean): ContextInfo {
  return {
    name,
    api: entry.api,
    tokenFile: entry['token-file'] ?? null,
    hasInlineToken: entry.token !== undefined,
    caFile: entry['ca-file'] ?? null,
    current,
  };
}
