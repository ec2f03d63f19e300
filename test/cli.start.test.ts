/**
 * A start that cannot succeed prints exactly one line with what to do, not a stack trace, and exits
 * 2 (configuration) or 7 (a port in use, an engine that does not answer); and the exit codes the
 * README documents are the CLI's own table.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXIT_TABLE } from '../src/cli/exit-codes.ts';
import { isolatedEnv, run } from './harness/cli-system.ts';
import { freePort } from './harness/processes.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'aetherium-cli-start-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const start = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  run(args, { cwd: dir, env: { ...isolatedEnv(dir), AETHERIUM_LOG__LEVEL: 'warn', ...env }, timeoutMs: 30_000 });

/** Exactly one line on stderr, nothing on stdout, and the exit code. */
function oneLine(result: { code: number | null; stdout: string; stderr: string }, code: number, pattern: RegExp) {
  expect(result.stdout).toBe('');
  expect(result.stderr.endsWith('\n')).toBe(true);
  expect(result.stderr.trimEnd().split('\n'), result.stderr).toHaveLength(1);
  expect(result.stderr).toMatch(/^error: /);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(result.stderr).toMatch(pattern);
  expect(result.code).toBe(code);
}

describe('a failed start is one line', () => {
  it('the port in use: exit 7, saying to stop the other process or pass --port', async () => {
    const holder: Server = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    try {
      const result = await start(['dev', '--port', String(port), '--host', '127.0.0.1', '--data-dir', join(dir, 'd1')]);
      oneLine(result, 7, new RegExp(`^error: port ${port} is in use .*stop the other process or pass --port`));
    } finally {
      await new Promise<void>((resolve) => holder.close(() => resolve()));
    }
  }, 40_000);

  it('an unknown key, a bad value, a file that cannot be read: exit 2 with the key', async () => {
    const typo = join(dir, 'typo.yaml');
    writeFileSync(typo, 'api_gateway:\n  prot: 9090\n');
    oneLine(
      await start(['dev', '-c', typo, '--data-dir', join(dir, 'd2')]),
      2,
      /invalid configuration in .*typo\.yaml: api_gateway\.prot: unknown key \(did you mean port\?\)/,
    );
    const value = join(dir, 'value.yaml');
    writeFileSync(value, 'api_gateway:\n  port: eighty\nworker:\n  max_vms: 3\n');
    oneLine(
      await start(['server', '-c', value]),
      2,
      /invalid configuration in .*value\.yaml: api_gateway\.port: .*expected number/,
    );
    const unreadable = join(dir, 'a-directory.yaml');
    mkdirSync(unreadable);
    oneLine(await start(['worker', '-c', unreadable]), 2, /a-directory\.yaml/);
    oneLine(await start(['dev', '-c', join(dir, 'missing.yaml')]), 2, /missing\.yaml does not exist/);
    oneLine(await start(['dev', '--port', 'http']), 2, /--port http: expected a port number/);
  }, 60_000);

  it('an engine that does not answer: exit 7, naming the engine, its address and the key', async () => {
    const closed = await freePort();
    const result = await start(['server', '--port', String(await freePort())], {
      AETHERIUM_STORE__KIND: 'postgres',
      DATABASE_URL: `postgres://aetherium:secret@127.0.0.1:${closed}/aetherium`,
      AETHERIUM_QUEUE__KIND: 'redis',
      AETHERIUM_EVENTS__KIND: 'redis',
      REDIS_URL: `redis://127.0.0.1:${closed}`,
    });
    oneLine(
      result,
      7,
      new RegExp(
        `^error: cannot reach Postgres at 127\\.0\\.0\\.1:${closed} \\(ECONNREFUSED.*\\): check store\\.postgres\\.url or DATABASE_URL`,
      ),
    );
    expect(result.stderr).not.toContain('secret');
  }, 40_000);

  it('AETHERIUM_DEBUG=1 adds the stack', async () => {
    const result = await start(['dev', '-c', join(dir, 'missing.yaml')], { AETHERIUM_DEBUG: '1' });
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')[0]).toMatch(/^error: .*missing\.yaml does not exist/);
    expect(result.stderr).toMatch(/\n\s+at /);
  }, 30_000);
});

describe('exit codes', () => {
  it('the README documents exactly the table of src/cli/exit-codes.ts', () => {
    const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
    const section = readme.slice(readme.indexOf('**Exit codes**'));
    const rows = [...section.matchAll(/^\| (\d+) \| (.+) \|$/gm)].map((m) => ({ code: Number(m[1]), meaning: m[2] }));
    expect(rows.slice(0, EXIT_TABLE.length)).toEqual(EXIT_TABLE.map(({ code, meaning }) => ({ code, meaning })));
  });
});
