/**
 * Loading is done in steps: the YAML file (if any) → environment overrides → zod, which fills the
 * defaults and rejects anything wrong with a message that names the key.
 *
 * Environment overrides: `AETHERIUM_<SECTION>__<KEY>` sets any key (`AETHERIUM_API_GATEWAY__PORT=9090`,
 * `AETHERIUM_WORKER__LABELS__TIER=gpu`); values are parsed as YAML scalars, so numbers and booleans
 * work. A few common names are accepted too: PORT, DATABASE_URL, REDIS_URL, WORKER_ID, WORKER_ZONE.
 */
import { existsSync, readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, type Config } from './schema.ts';

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

const ALIASES: Record<string, string[]> = {
  PORT: ['api_gateway', 'port'],
  DATABASE_URL: ['store', 'postgres', 'url'],
  WORKER_ID: ['worker', 'id'],
  WORKER_ZONE: ['worker', 'zone'],
};

type Tree = Record<string, unknown>;

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

function scalar(text: string): unknown {
  try {
    return parseYaml(text);
  } catch {
    return text;
  }
}

export function applyEnv(tree: Tree, env: NodeJS.ProcessEnv): Tree {
  for (const [name, path] of Object.entries(ALIASES)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(tree, path, scalar(value));
  }
  const redisUrl = env.REDIS_URL;
  if (redisUrl) {
    setPath(tree, ['queue', 'redis', 'url'], redisUrl);
    setPath(tree, ['events', 'redis', 'url'], redisUrl);
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('AETHERIUM_') || name === 'AETHERIUM_CONFIG' || value === undefined) continue;
    const path = name.slice('AETHERIUM_'.length).toLowerCase().split('__').filter(Boolean);
    if (path.length > 0) setPath(tree, path, scalar(value));
  }
  return tree;
}

export function formatIssues(error: z.ZodError, source: string): string {
  const lines = error.issues.map((issue) => `  - ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  return `invalid configuration in ${source}:\n${lines.join('\n')}`;
}

export interface LoadOptions {
  /** An explicit path must exist; without one, ./aetherium.yaml is read when present. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** Applied over the file and before the environment (command-line flags). */
  overrides?: Tree;
}

export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? env.AETHERIUM_CONFIG ?? (existsSync('aetherium.yaml') ? 'aetherium.yaml' : undefined);
  let tree: Tree = {};
  if (path) {
    if (!existsSync(path)) throw new ConfigError(`config file ${path} does not exist`);
    let parsed: unknown;
    try {
      parsed = parseYaml(readFileSync(path, 'utf8'));
    } catch (err) {
      throw new ConfigError(`config file ${path} is not valid YAML: ${(err as Error).message}`);
    }
    if (parsed !== null && parsed !== undefined && (typeof parsed !== 'object' || Array.isArray(parsed))) {
      throw new ConfigError(`config file ${path} must hold a mapping of sections (store, worker, …)`);
    }
    tree = (parsed ?? {}) as Tree;
  }
  for (const [key, value] of Object.entries(options.overrides ?? {})) {
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      tree[key] = { ...((tree[key] as Tree | undefined) ?? {}), ...(value as Tree) };
    } else {
      tree[key] = value;
    }
  }
  applyEnv(tree, env);
  const result = configSchema.safeParse(tree);
  if (!result.success) throw new ConfigError(formatIssues(result.error, path ?? 'defaults and environment'));
  return result.data;
}
