/**
 * The SDK's configuration: the CLI's contexts file (add, use, list, remove; atomic, private, never
 * clobbering another file) and how `new Aetherium()` resolves its API URL, token and CA.
 */
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  Aetherium,
  addContext,
  ConfigError,
  configPath,
  currentContext,
  listContexts,
  removeContext,
  useContext,
} from '../src/sdk/index.ts';

let dir: string;
let env: NodeJS.ProcessEnv;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'aetherium-sdk-config-'));
  env = { AETHERIUM_CLIENT_CONFIG: join(dir, 'conf', 'config.yaml') };
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

function secretFile(name: string, content: string, mode = 0o600): string {
  const path = join(dir, name);
  writeFileSync(path, `${content}\n`, { mode });
  chmodSync(path, mode);
  return path;
}

const mode = (path: string) => statSync(path).mode & 0o777;

describe('configPath', () => {
  it('AETHERIUM_CLIENT_CONFIG, else XDG_CONFIG_HOME, else ~/.config', () => {
    expect(configPath({ env: { AETHERIUM_CLIENT_CONFIG: '/x/c.yaml', XDG_CONFIG_HOME: '/xdg' } })).toBe('/x/c.yaml');
    expect(configPath({ env: { XDG_CONFIG_HOME: '/xdg' } })).toBe('/xdg/aetherium/config.yaml');
    expect(configPath({ env: {} })).toMatch(/\.config\/aetherium\/config\.yaml$/);
    // AETHERIUM_CONFIG names the server's configuration: never this file.
    expect(configPath({ env: { AETHERIUM_CONFIG: '/etc/aetherium/server.yaml' } })).not.toMatch(/server\.yaml/);
  });
});

describe('contexts', () => {
  it('add, list, use, current, remove; the file is 0600 in a 0700 directory and holds no token', () => {
    const prodToken = secretFile('prod.token', 'ae_prod_secretsecret');
    const ca = secretFile('ca.pem', '-----BEGIN CERTIFICATE-----', 0o644);
    const prod = addContext('prod', { env, api: 'https://cp.example.com:8080/', tokenFile: prodToken, caFile: ca });
    expect(prod).toEqual({
      name: 'prod',
      api: 'https://cp.example.com:8080',
      tokenFile: prodToken,
      hasInlineToken: false,
      caFile: ca,
      current: true, // the first context becomes the current one
    });
    addContext('lab', { env, api: 'http://10.0.0.5:8080', tokenFile: secretFile('lab.token', 'ae_lab_secret') });
    const path = configPath({ env });
    expect(mode(path)).toBe(0o600);
    expect(mode(join(dir, 'conf'))).toBe(0o700);
    const text = readFileSync(path, 'utf8');
    expect(text).toMatch(/current-context: prod/);
    expect(text).toMatch(/token-file:/);
    expect(text).not.toMatch(/ae_prod_secret|ae_lab_secret/);
    // No temporary file left behind by the atomic writes.
    expect(readdirSync(join(dir, 'conf'))).toEqual(['config.yaml']);

    expect(listContexts({ env }).map((c) => [c.name, c.current])).toEqual([
      ['lab', false],
      ['prod', true],
    ]);
    expect(useContext('lab', { env }).current).toBe(true);
    expect(currentContext({ env })?.name).toBe('lab');
    expect(() => useContext('nope', { env })).toThrow(/no context named nope .*there are: prod, lab/);
    expect(() => addContext('lab', { env, api: 'http://x:1' })).toThrow(/already exists/);
    expect(removeContext('lab', { env })).toBe(true);
    expect(removeContext('lab', { env })).toBe(false);
    expect(currentContext({ env })).toBeNull();
    expect(listContexts({ env }).map((c) => c.name)).toEqual(['prod']);
  });

  it('refuses a token file others can read, an unreadable one, a bad URL or name', () => {
    const open = secretFile('open.token', 'ae_open_secret', 0o644);
    expect(() => addContext('c', { env, api: 'http://h:1', tokenFile: open })).toThrow(ConfigError);
    expect(() => addContext('c', { env, api: 'http://h:1', tokenFile: open })).toThrow(/mode 644.*chmod 600/);
    expect(() => addContext('c', { env, api: 'http://h:1', tokenFile: join(dir, 'missing') })).toThrow(/cannot read/);
    expect(() => addContext('c', { env, api: 'ftp://h' })).toThrow(/http:\/\/ or https:\/\//);
    expect(() => addContext('c', { env, api: 'http://user:pw@h:1' })).toThrow(/credentials/);
    expect(() => addContext('bad name', { env, api: 'http://h:1' })).toThrow(/context name/);
    // Nothing was written by the refusals.
    expect(listContexts({ env })).toEqual([]);
  });

  it('an inline token is kept only in a private file', () => {
    addContext('inline', { env, api: 'http://h:1', token: 'ae_inline_secret' });
    expect(listContexts({ env })[0]).toMatchObject({ hasInlineToken: true, tokenFile: null });
    chmodSync(configPath({ env }), 0o644);
    expect(() => listContexts({ env })).toThrow(/holds a token and is accessible by other users/);
  });

  it('never rewrites a file that is not a client configuration (the server YAML, say)', () => {
    const server = join(dir, 'server.yaml');
    writeFileSync(server, 'api_gateway:\n  port: 9090\n');
    const serverEnv = { AETHERIUM_CLIENT_CONFIG: server };
    expect(() => addContext('x', { env: serverEnv, api: 'http://h:1' })).toThrow(
      /not an Aetherium client configuration/,
    );
    expect(readFileSync(server, 'utf8')).toBe('api_gateway:\n  port: 9090\n');
  });
});

describe('new Aetherium(): where the settings come from', () => {
  const base = () => ({ env, cwd: dir });

  it('with nothing configured: the local dev system and its admin key', () => {
    mkdirSync(join(dir, '.aetherium'));
    secretFile('.aetherium/admin.key', 'ae_dev_key');
    const client = new Aetherium(base());
    expect(client.settings).toMatchObject({
      apiUrl: 'http://localhost:8080',
      hasToken: true,
      source: { apiUrl: 'dev', token: 'dev' },
      requestTimeoutMs: 30_000,
    });
    // The implicit dev key never goes to a remote API.
    const remote = new Aetherium({ ...base(), apiUrl: 'https://cp.example.com' });
    expect(remote.settings).toMatchObject({ hasToken: false, source: { token: 'none' } });
    // AETHERIUM_KEY_FILE is explicit: used wherever the API is.
    const keyFile = secretFile('ci.key', 'ae_ci_key');
    expect(
      new Aetherium({ env: { ...env, AETHERIUM_KEY_FILE: keyFile }, apiUrl: 'https://cp.example.com' }).settings.source
        .token,
    ).toBe('key-file');
  });

  it('the environment beats the configuration file, options beat both; a context brings its own token and CA', () => {
    const ca = secretFile('ca.pem', 'not really a CA', 0o644);
    addContext('prod', { env, api: 'https://prod:8080', tokenFile: secretFile('p.token', 'ae_p_x'), caFile: ca });
    addContext('lab', { env, api: 'http://lab:8080', token: 'ae_lab_x' });

    expect(new Aetherium(base()).settings).toMatchObject({
      apiUrl: 'https://prod:8080',
      caFile: ca,
      source: { apiUrl: 'context:prod', token: 'context:prod', caFile: 'context:prod' },
    });
    expect(new Aetherium({ ...base(), env: { ...env, AETHERIUM_CONTEXT: 'lab' } }).settings.source).toMatchObject({
      apiUrl: 'context:lab',
      token: 'context:lab',
    });
    // AETHERIUM_API: the file is not read, so no context's token or CA goes with it.
    expect(new Aetherium({ ...base(), env: { ...env, AETHERIUM_API: 'http://other:1' } }).settings).toMatchObject({
      apiUrl: 'http://other:1',
      hasToken: false,
      caFile: null,
    });
    expect(
      new Aetherium({ ...base(), env: { ...env, AETHERIUM_API: 'http://other:1', AETHERIUM_TOKEN: 'ae_env' } }).settings
        .source,
    ).toMatchObject({ apiUrl: 'env', token: 'env' });
    // An explicit context wins over the environment; explicit options over everything.
    expect(
      new Aetherium({ ...base(), context: 'lab', env: { ...env, AETHERIUM_API: 'http://other:1' } }).settings.apiUrl,
    ).toBe('http://lab:8080');
    expect(
      new Aetherium({ ...base(), context: 'lab', apiUrl: 'http://given:2', token: 'ae_t' }).settings,
    ).toMatchObject({
      apiUrl: 'http://given:2',
      source: { apiUrl: 'option', token: 'option' },
    });
    expect(() => new Aetherium({ ...base(), context: 'nope' })).toThrow(/no context named nope/);
    expect(() => new Aetherium({ ...base(), env: { ...env, AETHERIUM_CONTEXT: 'nope' } })).toThrow(ConfigError);
  });

  it('never shows the token: not in settings, not in inspect or JSON', () => {
    const client = new Aetherium({ ...base(), apiUrl: 'http://127.0.0.1:1', token: 'ae_id_verysecrettoken' });
    expect(JSON.stringify(client.settings)).not.toMatch(/verysecret/);
    expect(inspect(client, { depth: 10, showHidden: true })).not.toMatch(/verysecret/);
    expect(JSON.stringify(client.vms)).not.toMatch(/verysecret/);
  });

  it('a CA file that cannot be read is a ConfigError naming it', () => {
    expect(() => new Aetherium({ ...base(), apiUrl: 'https://h', caFile: join(dir, 'missing.pem') })).toThrow(
      /cannot read the CA file .*missing\.pem/,
    );
  });
});
