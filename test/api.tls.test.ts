/**
 * TLS on the API: a certificate from a private CA (made here with openssl), the CLI trusting it with
 * --ca-file, refusing it without, and a clear error for http:// to the TLS listener.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { runCli } from './harness/processes.ts';

let dir: string;
let t: TestSystem;
let url: string;

function makeCertificates(into: string): void {
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: into, stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    '/CN=Aetherium test CA',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
    '-subj',
    '/CN=localhost',
  );
  writeFileSync(join(into, 'ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\n');
  openssl(
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'server.pem',
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aetherium-tls-'));
  makeCertificates(dir);
  t = await startTestSystem({
    api_gateway: { tls: { cert_file: join(dir, 'server.pem'), key_file: join(dir, 'server.key') } },
  });
  url = await t.app.listen({ port: 0, host: '127.0.0.1' });
}, 120_000);

afterAll(async () => {
  await t?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const cli = (api: string, ...args: string[]) =>
  runCli(['--api', api, '--token', t.adminKey, ...args], { AETHERIUM_CA_FILE: '' });

describe('TLS on the API', () => {
  it('listens with HTTPS', () => {
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
  });

  it('the CLI trusts the private CA given with --ca-file', async () => {
    const stats = await cli(url, '--ca-file', join(dir, 'ca.pem'), '--json', 'cluster', 'stats');
    expect(stats.stderr).toBe('');
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout).active_workers).toBe(1);
  });

  it('without the CA the CLI refuses the certificate and says how to trust it', async () => {
    const refused = await cli(url, 'cluster', 'stats');
    expect(refused.code).toBe(7);
    expect(refused.stderr).toMatch(/certificate of https:\/\/127\.0\.0\.1:\d+ is not trusted .*--ca-file/);
  });

  it('http:// to the TLS listener gets a clear error', async () => {
    const plain = await cli(url.replace('https:', 'http:'), 'cluster', 'stats');
    expect(plain.code).toBe(7);
    expect(plain.stderr).toMatch(/use --api https:\/\/127\.0\.0\.1:\d+/);
  });

  it('the event WebSocket runs over TLS with the same CA', async () => {
    const ws = new WebSocket(`${url.replace('https:', 'wss:')}/api/v1/events`, {
      headers: { authorization: `Bearer ${t.adminKey}` },
      ca: readFileSync(join(dir, 'ca.pem')),
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.close();
  });
});
