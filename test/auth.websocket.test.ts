/**
 * Credentials on the WebSockets, which browsers cannot give headers: `Authorization` for other
 * clients, the subprotocol entry `aetherium.bearer.<token>` next to `aetherium.v1` for pages (the
 * server answers `aetherium.v1`, never the entry with the token), never a token in the URL; and an
 * upgrade from a web page only from the server's own origin or one of `api_gateway.cors_origins`.
 */
import type { IncomingMessage } from 'node:http';
import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { type ClientOptions } from 'ws';
import { parseApiKey } from '../src/server/auth/api-keys.ts';
import { WS_BEARER_PREFIX, WS_PROTOCOL } from '../src/server/auth/auth-hooks.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

const UI_ORIGIN = 'https://ui.example.com';

let t: TestSystem;
let http: string;
let ws: string;
let viewerKey: string;
let operatorKey: string;
let vmId: string;

beforeAll(async () => {
  t = await startTestSystem({ api_gateway: { cors_origins: [UI_ORIGIN] } });
  http = await t.app.listen({ port: 0, host: '127.0.0.1' });
  ws = http.replace('http', 'ws');
  const tokens = t.system.controlPlane.tokens;
  viewerKey = (await tokens.create({ name: 'ws-viewer', role: 'viewer' }, null)).token;
  operatorKey = (await tokens.create({ name: 'ws-operator', role: 'operator' }, null)).token;
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms?wait=true', payload: { name: 'ws-vm' } });
  expect(res.statusCode, res.body).toBe(201);
  vmId = (JSON.parse(res.body) as { vm: { id: string } }).vm.id;
}, 120_000);

afterAll(async () => {
  await t?.app.inject({ method: 'DELETE', url: `/api/v1/vms/${vmId}?wait=true` });
  await t?.stop();
});

type Message = { type: string } & Record<string, unknown>;

interface Opened {
  kind: 'open';
  socket: WebSocket;
  messages: Message[];
  closed: Promise<number>;
  /** The headers of the 101 answer. */
  upgrade: IncomingMessage;
}

interface Refused {
  kind: 'refused';
  status: number;
  body: string;
}

/** Connects and says how the handshake went: opened, or refused with the HTTP answer. */
function connect(path: string, options: { protocols?: string[] } & ClientOptions = {}): Promise<Opened | Refused> {
  const { protocols, ...rest } = options;
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${ws}${path}`, protocols ?? [], rest);
    const messages: Message[] = [];
    let upgrade: IncomingMessage | null = null;
    // Events may come in the same packets as the 101: listen before the handshake ends.
    socket.on('message', (raw) => {
      for (const line of String(raw).split('\n')) messages.push(JSON.parse(line) as Message);
    });
    const closed = new Promise<number>((r) => socket.on('close', (code) => r(code)));
    socket.once('upgrade', (response) => (upgrade = response));
    socket.once('open', () => resolve({ kind: 'open', socket, messages, closed, upgrade: upgrade! }));
    socket.once('unexpected-response', (request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk));
      response.on('end', () => {
        resolve({ kind: 'refused', status: response.statusCode ?? 0, body });
        request.destroy();
      });
      response.on('error', reject);
    });
    // Once the promise is settled, a later error (the aborted request) changes nothing.
    socket.on('error', reject);
  });
}

function opened(result: Opened | Refused): Opened {
  if (result.kind !== 'open') throw new Error(`refused with HTTP ${result.status}: ${result.body}`);
  return result;
}

function refused(result: Opened | Refused): Refused {
  if (result.kind !== 'refused') {
    result.socket.terminate();
    throw new Error('the upgrade was accepted');
  }
  return result;
}

const errorOf = (r: Refused) => (JSON.parse(r.body) as { error: { code: string; message: string } }).error;

const until = async (check: () => boolean, ms = 10_000) => {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > ms) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

/** Makes the cluster publish a worker.updated, and waits for `session` to receive it. */
async function expectWorkerUpdated(session: Opened): Promise<void> {
  const seen = () => session.messages.some((m) => m.type === 'worker.updated');
  for (const eligible of [false, true]) {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/workers/test-worker/eligibility',
      payload: { eligible },
    });
    expect(res.statusCode).toBe(200);
  }
  await until(seen);
}

describe('the event stream', () => {
  it('refuses an upgrade without a token with HTTP 401', async () => {
    const r = refused(await connect('/api/v1/events'));
    expect(r.status).toBe(401);
    expect(errorOf(r)).toMatchObject({ code: 'unauthorized', message: expect.stringMatching(/aetherium\.bearer\./) });
  });

  it('opens with an Authorization header and streams events', async () => {
    const s = opened(await connect('/api/v1/events?topics=worker', { headers: bearer(viewerKey) }));
    try {
      await expectWorkerUpdated(s);
    } finally {
      s.socket.close();
    }
  });

  it('opens with the bearer subprotocol, answering aetherium.v1 and never the token', async () => {
    const s = opened(
      await connect('/api/v1/events?topics=worker', { protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${viewerKey}`] }),
    );
    try {
      expect(s.socket.protocol).toBe('aetherium.v1');
      expect(s.upgrade.headers['sec-websocket-protocol']).toBe('aetherium.v1');
      expect(JSON.stringify(s.upgrade.headers)).not.toContain(parseApiKey(viewerKey)!.secret);
      await expectWorkerUpdated(s);
    } finally {
      s.socket.close();
    }
  });

  it('refuses a bad token in the subprotocol, and a revoked one', async () => {
    const bad = refused(await connect('/api/v1/events', { protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}nonsense`] }));
    expect(bad.status).toBe(401);
    const tokens = t.system.controlPlane.tokens;
    const gone = (await tokens.create({ name: 'ws-gone', role: 'admin' }, null)).token;
    await tokens.revoke('ws-gone');
    const revoked = refused(
      await connect('/api/v1/events', { protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${gone}`] }),
    );
    expect(revoked.status).toBe(401);
    expect(errorOf(revoked).message).toMatch(/revoked/);
    expect(revoked.body).not.toContain(parseApiKey(gone)!.secret);
  });

  it('refuses a page from another origin with 403, even with a valid token', async () => {
    for (const origin of ['https://evil.example', 'null', http.replace('127.0.0.1', '127.0.0.1.evil.example')]) {
      const header = refused(await connect('/api/v1/events', { headers: { ...bearer(viewerKey), origin } }));
      expect(header.status, origin).toBe(403);
      expect(errorOf(header).code).toBe('forbidden');
      const protocol = refused(
        await connect('/api/v1/events', { origin, protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${viewerKey}`] }),
      );
      expect(protocol.status, origin).toBe(403);
    }
  });

  it("lets a page from the server's own origin and from cors_origins in", async () => {
    for (const origin of [http, UI_ORIGIN]) {
      const s = opened(
        await connect('/api/v1/events?topics=worker', {
          origin,
          protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${viewerKey}`],
        }),
      );
      expect(s.socket.protocol).toBe(WS_PROTOCOL);
      s.socket.close();
    }
  });

  it('never takes a token from the URL', async () => {
    for (const query of [`token=${viewerKey}`, `access_token=${viewerKey}`]) {
      const r = refused(await connect(`/api/v1/events?${query}`));
      expect(r.status, query).toBe(401);
    }
  });
});

describe('a refused upgrade', () => {
  /** A handshake without credentials on a bare TCP socket: the answer, and whether the server hung up. */
  function rawRefusal(): Promise<{ status: string; closedByServer: boolean }> {
    const { hostname, port } = new URL(http);
    return new Promise((resolve, reject) => {
      const socket = tcpConnect(Number(port), hostname, () =>
        socket.write(
          'GET /api/v1/events HTTP/1.1\r\n' +
            `Host: ${hostname}:${port}\r\n` +
            'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
        ),
      );
      let data = '';
      const status = () => data.split('\r\n')[0] ?? '';
      socket.on('data', (chunk: Buffer) => (data += chunk));
      socket.on('error', reject);
      socket.on('end', () => {
        clearTimeout(timer);
        resolve({ status: status(), closedByServer: true });
      });
      const timer = setTimeout(() => {
        socket.destroy();
        resolve({ status: status(), closedByServer: false });
      }, 2000);
    });
  }

  // A refused upgrade must not keep its socket: app.close() (and so SIGTERM) would wait for it.
  it('closes the connection of a refused upgrade', async () => {
    const answer = await rawRefusal();
    expect(answer.status).toMatch(/^HTTP\/1\.1 401/);
    expect(answer.closedByServer).toBe(true);
  });
});

describe('the exec stream', () => {
  const path = () => `/api/v1/vms/${vmId}/exec/stream`;

  it('refuses an upgrade without a token with 401, and a viewer with 403', async () => {
    const anonymous = refused(await connect(path()));
    expect(anonymous.status).toBe(401);
    const viewer = refused(await connect(path(), { headers: bearer(viewerKey) }));
    expect(viewer.status).toBe(403);
    expect(errorOf(viewer).message).toMatch(/needs the operator role/);
    const viaProtocol = refused(await connect(path(), { protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${viewerKey}`] }));
    expect(viaProtocol.status).toBe(403);
    const fromUrl = refused(await connect(`${path()}?token=${operatorKey}`));
    expect(fromUrl.status).toBe(401);
    const evil = refused(
      await connect(path(), { headers: { ...bearer(operatorKey), origin: 'https://evil.example' } }),
    );
    expect(evil.status).toBe(403);
  });

  for (const how of ['header', 'subprotocol'] as const) {
    it(`runs a command for an operator (${how})`, async () => {
      const s = opened(
        await connect(
          path(),
          how === 'header'
            ? { headers: bearer(operatorKey) }
            : { protocols: [WS_PROTOCOL, `${WS_BEARER_PREFIX}${operatorKey}`] },
        ),
      );
      if (how === 'subprotocol') expect(s.socket.protocol).toBe(WS_PROTOCOL);
      s.socket.send(JSON.stringify({ type: 'start', command: 'echo', args: ['hi'] }));
      expect(await s.closed).toBe(1000);
      expect(s.messages[0]).toMatchObject({ type: 'started', task_id: expect.any(String) });
      const stdout = s.messages
        .filter((m) => m.type === 'stdout')
        .map((m) => String(m.data))
        .join('');
      expect(stdout).toBe('hi\n');
      expect(s.messages.at(-1)).toMatchObject({ type: 'exit', exit_code: 0 });
    });
  }
});
