/**
 * The SDK's browser client (src/sdk/browser.ts: fetch and the platform's WebSocket, the token as a
 * subprotocol) against a real embedded system. Node 20 has fetch but no global WebSocket, so `ws`
 * (which speaks the same WHATWG interface) stands in as the platform's; the browser tests run the
 * same client in Chromium.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { Aetherium, ForbiddenError, NotFoundError, UnauthorizedError, UnavailableError } from '../src/sdk/browser.ts';
import type { ClusterEvent } from '../src/sdk/browser.ts';
import { failure, type SdkTestSystem, startSdkSystem } from './harness/sdk-system.ts';

let t: SdkTestSystem;
let admin: Aetherium;
let viewer: Aetherium;

beforeAll(async () => {
  vi.stubGlobal('WebSocket', WebSocket);
  t = await startSdkSystem();
  admin = new Aetherium({ apiUrl: t.url, token: t.adminKey });
  const key = await admin.tokens.create({ name: 'browser-viewer', role: 'viewer' });
  viewer = new Aetherium({ apiUrl: `${t.url}/`, token: key.token });
});

afterAll(async () => {
  await t?.stop();
  vi.unstubAllGlobals();
});

describe('the browser client', () => {
  it('checks its token with whoami, and a wrong one is UnauthorizedError', async () => {
    expect(await viewer.whoami()).toMatchObject({ kind: 'key', name: 'browser-viewer', role: 'viewer' });
    const wrong = new Aetherium({ apiUrl: t.url, token: 'ae_wrong' });
    expect(await failure(wrong.whoami())).toBeInstanceOf(UnauthorizedError);
  });

  it('reads typed answers (times are Dates) and typed errors', async () => {
    const workers = await viewer.workers.list();
    expect(workers.length).toBe(1);
    expect(workers[0]!.last_seen).toBeInstanceOf(Date);
    expect(await failure(viewer.vms.get('no-such-vm'))).toBeInstanceOf(NotFoundError);
    expect(await failure(viewer.vms.create({ name: 'nope' }))).toBeInstanceOf(ForbiddenError);
  });

  it('follows events over the WebSocket, authenticated by subprotocol, and runs a command with stdin', async () => {
    const seen: ClusterEvent[] = [];
    const subscription = viewer.events.subscribe({ topics: ['vm'] }, (event) => void seen.push(event));
    const vm = await admin.vms.create({ name: 'browser-sdk', vcpus: 1, memory_mb: 128 });
    await vi.waitFor(() => expect(seen.map((e) => e.type)).toContain('vm.created'), { timeout: 15_000 });
    subscription.close();

    const out: string[] = [];
    const result = await vm.exec('cat', { stdin: 'hello from a page\n', onStdout: (d) => out.push(d) });
    expect(result.exitCode).toBe(0);
    expect(out.join('')).toBe('hello from a page\n');
    await vm.delete();
  });

  it('a socket it cannot open is an UnavailableError, not a hang', async () => {
    const wrong = new Aetherium({ apiUrl: t.url, token: 'ae_wrong' });
    const errors: Error[] = [];
    const subscription = wrong.events.subscribe({}, () => undefined, { onError: (err) => void errors.push(err) });
    await vi.waitFor(() => expect(errors.length).toBeGreaterThan(0), { timeout: 10_000 });
    expect(errors[0]).toBeInstanceOf(UnavailableError);
    subscription.close();
  });

  it('refuses an API URL that is not http(s)', () => {
    expect(() => new Aetherium({ apiUrl: 'ftp://example.com' })).toThrow(/http:\/\/ or https:\/\//);
  });
});

describe('the browser build of the SDK (dist/sdk/browser.mjs, `aetherium/sdk` under the browser condition)', () => {
  it("reaches none of Node's modules through its chunks", () => {
    const seen = new Set<string>();
    const nodeOnly: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(/(?:from|import)\s*\(?"([^"]+)"/g)) {
        const specifier = match[1]!;
        if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier));
        else if (specifier.startsWith('node:') || specifier === 'ws') nodeOnly.push(`${file} imports ${specifier}`);
      }
      for (const global of text.match(/\b(?:process|Buffer)\.\w+/g) ?? []) nodeOnly.push(`${file} uses ${global}`);
    };
    visit(fileURLToPath(new URL('../dist/sdk/browser.mjs', import.meta.url)));
    expect(seen.size).toBeGreaterThan(1);
    expect(nodeOnly).toEqual([]);
    const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'));
    expect(pkg.exports['./sdk'].browser.import).toBe('./dist/sdk/browser.mjs');
  });
});
