/**
 * What stands between `aetherium dev | server | worker` and a stack trace: a start that cannot go on
 * says so in one line, with what to do, and exits 2 (the configuration is wrong) or 7 (something it
 * needs is unavailable: a port in use, an engine that cannot be reached). `AETHERIUM_DEBUG=1` adds
 * the stack.
 *
 *   - the configuration: a file that cannot be read, a value the schema refuses, a key it does not
 *     know (the loader ignores those, so a typo would silently keep the default: refused here);
 *   - the listeners: the API port (and a server's agent port) are tried before anything starts;
 *   - the engines (Postgres, Redis, etcd, Consul): each address is resolved and connected to before
 *     the start, so that an engine that is down fails the start at once, naming the engine, its
 *     address and the key to fix, instead of the drivers retrying forever.
 *
 * Loaded only by those commands.
 */
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, type Socket, connect as tcpConnect } from 'node:net';
import type { Config } from '../config/schema.ts';
import { CliError } from './errors.ts';
import { EXIT } from './exit-codes.ts';

export interface RunFlags {
  config?: string;
  port?: string;
  host?: string;
  dataDir?: string;
  join?: string;
  server?: string[];
  id?: string;
}

/** The file loadConfig reads, by its rules: `-c`, AETHERIUM_CONFIG, or ./aetherium.yaml when present. */
export function configFile(flags: RunFlags, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return flags.config ?? env.AETHERIUM_CONFIG ?? (existsSync('aetherium.yaml') ? 'aetherium.yaml' : undefined);
}

/** A ConfigError's text on one line: `invalid configuration in X: a.b: problem; c: problem`. */
export function oneLine(message: string): string {
  return message
    .replace(/:\n\s+- /, ': ')
    .replace(/\n\s+- /g, '; ')
    .replace(/\s*\n\s*/g, ' ');
}

export async function loadRunConfig(flags: RunFlags): Promise<Config> {
  const [{ ConfigError, loadConfig }, { configSchema }] = await Promise.all([
    import('../config/load.ts'),
    import('../config/schema.ts'),
  ]);
  const overrides: Record<string, unknown> = {};
  if (flags.port !== undefined) {
    const port = Number(flags.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new CliError(`--port ${flags.port}: expected a port number (0-65535)`, EXIT.USAGE);
    overrides.api_gateway = { port };
  }
  if (flags.host !== undefined) overrides.api_gateway = { ...(overrides.api_gateway as object), host: flags.host };
  if (flags.dataDir) {
    overrides.store = { pglite: { data_dir: `${flags.dataDir}/pglite` } };
    overrides.worker = { drivers: { state_dir: `${flags.dataDir}/vms` } };
  }
  const worker: Record<string, unknown> = {};
  if (flags.join) worker.join_token = flags.join;
  if (flags.server?.length) worker.servers = flags.server;
  if (flags.id) worker.id = flags.id;
  if (Object.keys(worker).length) overrides.worker = { ...(overrides.worker as object), ...worker };
  const file = configFile(flags);
  let config: Config;
  try {
    config = loadConfig({ ...(flags.config ? { path: flags.config } : {}), overrides });
  } catch (err) {
    if (err instanceof ConfigError) throw new CliError(`${oneLine(err.message)}`, EXIT.USAGE);
    const code = (err as NodeJS.ErrnoException).code;
    if (file && code)
      throw new CliError(`cannot read the config file ${file} (${code}): ${(err as Error).message}`, EXIT.USAGE);
    throw err;
  }
  if (file) {
    const unknown = unknownKeys(readYaml(file, await import('yaml')), configSchema);
    if (unknown.length > 0)
      throw new CliError(
        `invalid configuration in ${file}: ${unknown.map((u) => `${u.path}: unknown key${u.hint ? ` (did you mean ${u.hint}?)` : ''}`).join('; ')}; config.example.yaml lists every key`,
        EXIT.USAGE,
      );
  }
  return config;
}

function readYaml(file: string, yaml: typeof import('yaml')): unknown {
  try {
    return yaml.parse(readFileSync(file, 'utf8'));
  } catch {
    return null; // loadConfig read it a moment ago: nothing to add
  }
}

// ---- unknown keys --------------------------------------------------------------------------------

interface SchemaNode {
  _zod: {
    def: {
      type: string;
      shape?: Record<string, SchemaNode>;
      innerType?: SchemaNode;
      in?: SchemaNode;
      out?: SchemaNode;
      options?: SchemaNode[];
      element?: SchemaNode;
      valueType?: SchemaNode;
    };
  };
}

/** The object schemas a node stands for (through defaults, optionals, pipes and unions); none: any keys. */
function objectsOf(node: SchemaNode | undefined, depth = 0): Record<string, SchemaNode>[] | null {
  if (!node || depth > 20) return null;
  const def = node._zod.def;
  switch (def.type) {
    case 'object':
      return def.shape ? [def.shape] : null;
    case 'default':
    case 'prefault':
    case 'optional':
    case 'nullable':
    case 'readonly':
    case 'catch':
      return objectsOf(def.innerType, depth + 1);
    case 'pipe':
      return objectsOf(def.in, depth + 1);
    case 'union': {
      const shapes = (def.options ?? []).map((o) => objectsOf(o, depth + 1));
      if (shapes.some((s) => s === null)) return null;
      return shapes.flat() as Record<string, SchemaNode>[];
    }
    default:
      return null;
  }
}

export interface UnknownKey {
  path: string;
  hint: string | null;
}

/** Keys in `tree` (a parsed config file) that no object of `schema` has, with the nearest known key. */
export function unknownKeys(tree: unknown, schema: unknown, prefix = ''): UnknownKey[] {
  if (typeof tree !== 'object' || tree === null || Array.isArray(tree)) return [];
  const shapes = objectsOf(schema as SchemaNode);
  if (!shapes || shapes.length === 0) return [];
  const found: UnknownKey[] = [];
  for (const [key, value] of Object.entries(tree)) {
    const path = prefix ? `${prefix}.${key}` : key;
    const owner = shapes.find((shape) => Object.hasOwn(shape, key));
    if (!owner) {
      const known = [...new Set(shapes.flatMap((s) => Object.keys(s)))];
      found.push({ path, hint: nearest(key, known) });
      continue;
    }
    found.push(...unknownKeys(value, owner[key], path));
  }
  return found;
}

function nearest(key: string, known: string[]): string | null {
  let best: string | null = null;
  let bestDistance = Math.max(2, Math.floor(key.length / 3)) + 1;
  for (const candidate of known) {
    const d = distance(key, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

// ---- listeners -----------------------------------------------------------------------------------

interface Listener {
  host: string;
  port: number;
  /** How to choose another: `pass --port (api_gateway.port)`. */
  fix: string;
}

export function listenersOf(config: Config, role: 'dev' | 'server'): Listener[] {
  const listeners: Listener[] = [
    { host: config.api_gateway.host, port: config.api_gateway.port, fix: 'pass --port (api_gateway.port)' },
  ];
  const tls = config.agent.tls;
  if (role === 'server' && tls.cert_file && tls.key_file && tls.ca_file)
    listeners.push({ host: config.agent.host, port: config.agent.port, fix: 'set agent.port' });
  return listeners.filter((l) => l.port !== 0);
}

export function listenError(listener: Listener, err: NodeJS.ErrnoException): CliError | null {
  const { host, port, fix } = listener;
  switch (err.code) {
    case 'EADDRINUSE':
      return new CliError(
        `port ${port} is in use (${host}:${port}): stop the other process or ${fix}`,
        EXIT.UNAVAILABLE,
      );
    case 'EACCES':
      return new CliError(
        `port ${port} needs privileges to listen on (EACCES): use a port above 1023 or grant CAP_NET_BIND_SERVICE; ${fix}`,
        EXIT.UNAVAILABLE,
      );
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new CliError(
        `cannot listen on ${host}:${port} (${err.code}): ${host} is not an address of this machine; pass --host (api_gateway.host)`,
        EXIT.USAGE,
      );
    default:
      return null;
  }
}

/** Tries each listener's address (and lets it go): a port in use fails the start before anything opens. */
export async function checkListeners(listeners: Listener[]): Promise<void> {
  for (const listener of listeners) {
    await new Promise<void>((resolve, reject) => {
      const server = createServer();
      server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(listener, err) ?? err));
      server.listen({ host: listener.host, port: listener.port, exclusive: true }, () => server.close(() => resolve()));
    });
  }
}

// ---- engines -------------------------------------------------------------------------------------

export interface Endpoint {
  engine: 'Postgres' | 'Redis' | 'etcd' | 'Consul';
  host: string;
  port: number;
  /** The config keys that set it, and the variable that does too. */
  keys: string[];
  env?: string;
}

function hostPort(text: string, defaultPort: number): { host: string; port: number } | null {
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `tcp://${text}`);
  } catch {
    return null;
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) return null; // a Unix socket, or a URL that names its host another way: the driver reports it
  return { host, port: url.port ? Number(url.port) : defaultPort };
}

/** The engines' addresses in this configuration (only those it uses; none for the embedded ones). */
export function endpointsOf(config: Config): Endpoint[] {
  const found: Endpoint[] = [];
  const add = (engine: Endpoint['engine'], text: string, defaultPort: number, key: string, env?: string) => {
    const at = hostPort(text, defaultPort);
    if (!at) return;
    const same = found.find((e) => e.engine === engine && e.host === at.host && e.port === at.port);
    if (same) {
      if (!same.keys.includes(key)) same.keys.push(key);
    } else found.push({ engine, ...at, keys: [key], ...(env ? { env } : {}) });
  };
  if (config.store.kind === 'postgres') {
    const url = config.store.postgres.url;
    if (!/[?&]host=/.test(url)) add('Postgres', url, 5432, 'store.postgres.url', 'DATABASE_URL');
  }
  if (config.queue.kind === 'redis') add('Redis', config.queue.redis.url, 6379, 'queue.redis.url', 'REDIS_URL');
  if (config.events.kind === 'redis') add('Redis', config.events.redis.url, 6379, 'events.redis.url', 'REDIS_URL');
  const d = config.discovery;
  if (d.provider === 'etcd') for (const e of d.etcd.endpoints) add('etcd', e, 2379, 'discovery.etcd.endpoints');
  if (d.provider === 'consul') add('Consul', d.consul.address, 8500, 'discovery.consul.address');
  return found;
}

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
]);

export function engineError(endpoint: Endpoint, code: string): CliError {
  const why =
    code === 'ENOTFOUND' || code === 'EAI_AGAIN'
      ? `${code}: the name does not resolve`
      : code === 'ECONNREFUSED'
        ? `${code}: is it running?`
        : code === 'ETIMEDOUT'
          ? `${code}: no answer`
          : code;
  const keys = `${endpoint.keys.join(' and ')}${endpoint.env ? ` or ${endpoint.env}` : ''}`;
  return new CliError(
    `cannot reach ${endpoint.engine} at ${endpoint.host}:${endpoint.port} (${why}): check ${keys}`,
    EXIT.UNAVAILABLE,
  );
}

function probe(endpoint: Endpoint, timeoutMs: number): Promise<string | null> {
  return new Promise((resolve) => {
    let socket: Socket | null = null;
    const timer = setTimeout(() => done('ETIMEDOUT'), timeoutMs);
    function done(code: string | null) {
      clearTimeout(timer);
      socket?.destroy();
      resolve(code);
    }
    lookup(endpoint.host).then(
      () => {
        socket = tcpConnect({ host: endpoint.host, port: endpoint.port });
        socket.once('connect', () => done(null));
        socket.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? 'ECONNREFUSED'));
      },
      (err: NodeJS.ErrnoException) => done(err.code ?? 'ENOTFOUND'),
    );
  });
}

/** Resolves and connects to every engine at once; the first that fails stops the start. */
export async function probeEngines(config: Config, timeoutMs = 5000): Promise<void> {
  const endpoints = endpointsOf(config);
  const results = await Promise.all(endpoints.map((e) => probe(e, timeoutMs)));
  const failed = results.findIndex((code) => code !== null);
  if (failed >= 0) throw engineError(endpoints[failed]!, results[failed]!);
}

/**
 * A failure during the start, as one line: a listener or an engine by its address (when the checks
 * above passed and it failed anyway), a configuration mistake by its class; null: not one of these.
 */
export function explainStartFailure(
  err: unknown,
  config: Config | null,
  role: 'dev' | 'server' | 'worker',
): CliError | null {
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const name = (err as Error)?.constructor?.name ?? (err as Error)?.name;
  if (CONFIG_ERRORS.has(name)) return new CliError(oneLine((err as Error).message), EXIT.USAGE);
  if (!config || typeof e?.code !== 'string') return null;
  if (role !== 'worker' && ['EADDRINUSE', 'EACCES', 'EADDRNOTAVAIL'].includes(e.code) && e.syscall === 'listen') {
    const listener = listenersOf(config, role).find((l) => l.port === e.port) ?? listenersOf(config, role)[0];
    if (listener) return listenError(listener, e);
  }
  if (NETWORK_CODES.has(e.code)) {
    const endpoints = endpointsOf(config);
    const endpoint =
      endpoints.find((p) => p.port === e.port && (p.host === e.address || p.host === e.hostname)) ??
      endpoints.find((p) => p.host === e.hostname || p.host === e.address);
    if (endpoint) return engineError(endpoint, e.code);
  }
  // Postgres refusing the credentials or the database is a configuration mistake.
  if (config.store.kind === 'postgres' && /^(28|3D)/.test(e.code)) {
    return new CliError(
      `Postgres refused the connection: ${e.message}; check store.postgres.url (DATABASE_URL)`,
      EXIT.USAGE,
    );
  }
  return null;
}

/**
 * Mistakes in the configuration the runtime finds (engines that cannot be shared, an unsafe listener,
 * a state dir another worker holds, a worker identity that does not fit) exit 2 with the reason.
 */
const CONFIG_ERRORS = new Set([
  'SharedEnginesRequired',
  'UnsafeBind',
  'WorkerLockHeld',
  'ConfigError',
  'IdentityError',
]);
