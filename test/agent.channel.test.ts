/**
 * The agent channel end to end in one process: a control plane with its agent port on real
 * mutual TLS (certificates from our own CA code), embedded engines behind it, and workers that
 * reach it only through RemoteWorkerLink. What must hold: identities come from certificates, a
 * worker may act only on itself, refusals are audited, and certificates that are not ours, have
 * expired or were revoked do not get a channel.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentConnection } from '../src/adapters/agent/agent-connection.ts';
import { RemoteWorkerLink } from '../src/adapters/agent/remote-worker-link.ts';
import { type CertificateAuthority, createCa, parseCa } from '../src/adapters/pki/ca.ts';
import { issueServerCert, issueWorkerCert } from '../src/adapters/pki/certificates.ts';
import { createKeyAndCsr } from '../src/adapters/pki/csr.ts';
import { LocalNodeCertificateAuthority } from '../src/adapters/pki/node-ca.ts';
import { loadConfig } from '../src/config/load.ts';
import { AetheriumError, newId, newTask, SERVER_NAME, type WorkerRegistration } from '../src/domain/index.ts';
import { type Engines, openEngines } from '../src/runtime/engines.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { ControlPlane } from '../src/server/control-plane.ts';
import { workerRegistration } from './harness/agent-port.ts';
import { bearer } from './harness/auth.ts';
import { eventuallyPasses } from './harness/eventually.ts';
import { freePort } from './harness/processes.ts';

let dir: string;
let engines: Engines;
let cp: ControlPlane;
let ca: CertificateAuthority;
let caPem: string;
let agentAddress: string;
let adminKey: string;
const opened: AgentConnection[] = [];

/** Short-lived, so that a revoked worker turns offline within the test. */
const registration = (id: string): WorkerRegistration => ({ ...workerRegistration(id), ttl_seconds: 3 });

async function linkFor(workerId: string, ttlMs = 3_600_000) {
  const issued = await issueWorkerCert(ca, workerId, { ttlMs });
  const connection = new AgentConnection({
    servers: [agentAddress],
    tls: () => ({ ca: caPem, cert: issued.certPem, key: issued.keyPem }),
    log: silentLogger,
    connectWaitMs: 5000,
  });
  opened.push(connection);
  const link = new RemoteWorkerLink(connection);
  connection.start();
  await connection.connected(10_000);
  return { link, connection, issued };
}

/** One WebSocket upgrade to the agent port with the given client certificate; the status it got. */
function upgrade(tls: { cert?: string; key?: string; ca?: string }): Promise<{ status: number; message: string }> {
  return new Promise((resolve, reject) => {
    const options = { ca: tls.ca ?? caPem, cert: tls.cert, key: tls.key, servername: SERVER_NAME };
    const ws = new WebSocket(`wss://${agentAddress}/v1/channel`, options as WebSocket.ClientOptions);
    ws.on('open', () => {
      ws.close();
      resolve({ status: 101, message: '' });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, message: body }));
    });
    ws.on('error', (err) => reject(err));
  });
}

function post(
  path: string,
  body: unknown,
): Promise<{ status: number; body: { error?: { message: string } } & Record<string, unknown> }> {
  const [host, port] = agentAddress.split(':') as [string, string];
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host,
        port: Number(port),
        path,
        method: 'POST',
        ca: caPem,
        servername: SERVER_NAME,
        headers: { 'content-type': 'application/json' },
      },
      (res) => {
        let text = '';
        res.on('data', (c: Buffer) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

const api = (method: 'GET' | 'POST', url: string, payload?: Record<string, unknown>) =>
  cp.http.inject({ method, url, headers: bearer(adminKey), ...(payload === undefined ? {} : { payload }) });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aetherium-agent-'));
  const pems = await createCa();
  caPem = pems.certPem;
  ca = await parseCa(pems.certPem, pems.keyPem);
  const server = await issueServerCert(ca);
  const port = await freePort();
  agentAddress = `127.0.0.1:${port}`;
  const config = loadConfig({
    env: {},
    overrides: {
      store: { kind: 'pglite', pglite: { data_dir: join(dir, 'pglite') } },
      log: { level: 'silent' },
      worker: { heartbeat_interval: '500ms', ttl: '3s' },
    },
  });
  engines = await openEngines(config, silentLogger);
  cp = new ControlPlane(config, {
    ...engines,
    log: silentLogger,
    mode: 'server',
    version: 'test',
    agent: {
      options: {
        host: '127.0.0.1',
        port,
        tls: { cert: server.certPem, key: server.keyPem, ca: caPem },
        pingIntervalMs: 1000,
      },
      ca: new LocalNodeCertificateAuthority(ca),
      certTtlMs: 60_000,
    },
  });
  await cp.startAndListen(false);
  adminKey = (await cp.tokens.create({ name: 'test-admin', role: 'admin' }, null)).token;
}, 120_000);

afterAll(async () => {
  for (const c of opened) await c.close().catch(() => undefined);
  await cp?.stop();
  await engines?.close();
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

async function expectForbidden(promise: Promise<unknown>): Promise<string> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AetheriumError);
  expect((err as AetheriumError).code).toBe('forbidden');
  return (err as AetheriumError).message;
}

describe('node restriction', () => {
  it('a worker registers and beats as the worker its certificate names', async () => {
    const { link } = await linkFor('nr-self');
    expect(await link.register(registration('nr-self'))).toEqual({ created: true });
    expect(await link.heartbeat('nr-self')).toEqual({ status: 'active', was_offline: false });
    const worker = await engines.store.getWorker('nr-self');
    expect(worker?.status).toBe('active');
  });

  it('refuses w1 registering, beating, claiming or reporting as w2, and audits each refusal', async () => {
    const w2 = await linkFor('nr-w2');
    await w2.link.register(registration('nr-w2'));
    const w1 = await linkFor('nr-w1');
    await w1.link.register(registration('nr-w1'));

    // A VM on w2 and a task queued for w2.
    const now = new Date();
    const vm = {
      id: newId(),
      name: `vm-${newId().slice(0, 6)}`,
      status: 'created' as const,
      worker_id: null,
      vcpus: 1,
      memory_mb: 256,
      disk_gb: 1,
      labels: {},
      image: null,
      zone: null,
      driver: 'process' as const,
      error: null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
      phases: {},
    };
    const create = newTask('vm:create', { worker_labels: {}, strategy: null }, { vm_id: vm.id });
    await engines.store.insertVmWithTask(vm, create);
    const placement = {
      workers: 1,
      evaluated: 1,
      sampled: false,
      feasible: 1,
      rejected: {},
      strategy: 'binpack' as const,
      chosen: { worker_id: 'nr-w2', driver: 'process' as const, score: 1 },
      moved_from: [],
    };
    expect(await engines.store.placeTask(create.id, vm.id, 'nr-w2', 'process', placement as never)).toBe('placed');
    await engines.store.updateVm(vm.id, { status: 'running' });
    const task = newTask('vm:stop', {}, { vm_id: vm.id, worker_id: 'nr-w2', status: 'scheduled' });
    await engines.store.insertTask(task);

    await expectForbidden(w1.link.heartbeat('nr-w2'));
    await expectForbidden(w1.link.register(registration('nr-w2')));
    await expectForbidden(w1.link.claimTask('nr-w1', task.id, false));
    await expectForbidden(w1.link.claimTask('nr-w2', task.id, false));
    await expectForbidden(w1.link.reportVm('nr-w1', vm.id, { kind: 'status', to: 'stopped' }));
    await expectForbidden(w1.link.reportOutcome('nr-w1', task.id, { kind: 'interrupted' }));
    await expectForbidden(w1.link.reportResources('nr-w2', { cpu_cores: 1, memory_mb: 1, disk_gb: 1, max_vms: 1 }));

    // Nothing changed for w2.
    expect((await engines.store.getTask(task.id))?.status).toBe('scheduled');
    expect((await engines.store.getVm(vm.id))?.status).toBe('running');
    expect((await engines.store.getWorker('nr-w2'))?.cpu_cores).toBe(8);

    const audit = await engines.store.listAudit({ outcome: 'denied' });
    const mine = audit.filter((a) => a.actor === 'worker:nr-w1');
    expect(mine.length).toBeGreaterThanOrEqual(7);
    expect(mine.every((a) => a.status === 403 && a.actor_kind === 'certificate')).toBe(true);
    expect(mine.map((a) => a.action)).toEqual(
      expect.arrayContaining([
        'agent.heartbeat',
        'agent.register',
        'agent.claimTask',
        'agent.reportVm',
        'agent.reportOutcome',
      ]),
    );
    expect(mine.map((a) => a.target)).toEqual(
      expect.arrayContaining([`task:${task.id}`, `vm:${vm.id}`, 'worker:nr-w2']),
    );
  });

  it('a second connection with the same worker id is refused while the first is open', async () => {
    const { issued } = await linkFor('nr-dup');
    const second = await upgrade({ cert: issued.certPem, key: issued.keyPem });
    expect(second.status).toBe(409);
    expect(second.message).toContain('already connected');
  });

  it('arguments that do not match the protocol are refused as validation errors, not acted on', async () => {
    const { connection } = await linkFor('nr-bad');
    const err = await connection.call('heartbeat', [{ not: 'an id' }]).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'validation_failed' });
  });
});

describe('who may connect', () => {
  it('no certificate, a certificate of another CA, an expired one or a server certificate: no channel', async () => {
    expect((await upgrade({})).status).toBe(401);

    const otherCa = await parseCa(...(Object.values(await createCa()) as [string, string]));
    const foreign = await issueWorkerCert(otherCa, 'intruder');
    const refused = await upgrade({ cert: foreign.certPem, key: foreign.keyPem });
    expect(refused.status).toBe(401);
    expect(refused.message).toContain('refused');

    const shortLived = await issueWorkerCert(ca, 'expiring', { ttlMs: 1000 });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const expired = await upgrade({ cert: shortLived.certPem, key: shortLived.keyPem });
    expect(expired.status).toBe(401);
    expect(expired.message).toMatch(/expired/i);

    const server = await issueServerCert(ca);
    expect((await upgrade({ cert: server.certPem, key: server.keyPem })).status).toBe(401);
  });

  it('a revoked worker loses its channel at once, cannot reconnect, and goes offline within its TTL', async () => {
    const { link, issued } = await linkFor('rv-1');
    await link.register(registration('rv-1'));
    const revoked = await api('POST', '/api/v1/workers/rv-1/revoke');
    expect(revoked.statusCode).toBe(200);
    // The open session ends at its next call.
    await expect(link.heartbeat('rv-1')).rejects.toMatchObject({
      code: expect.stringMatching(/unauthorized|unavailable/),
    });
    const again = await upgrade({ cert: issued.certPem, key: issued.keyPem });
    expect(again.status).toBe(401);
    expect(again.message).toContain('revoked');
    await eventuallyPasses(
      async () => expect((await engines.store.getWorker('rv-1'))?.status).toBe('offline'),
      10_000,
      200,
    );
  });
});

describe('worker logs over the channel', () => {
  it('refuses a bad `since`, and answers 404 for a worker connected to no replica', async () => {
    const bad = await api('GET', '/api/v1/workers/nr-self/logs?since=yesterday');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toContain('since');
    const unknown = await api('GET', '/api/v1/workers/nobody-here/logs');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.message).toContain('not connected');
  });
});

describe('join tokens', () => {
  it('a token admits one worker, then is refused; the certificate names the id the control plane chose', async () => {
    const created = await api('POST', '/api/v1/tokens/join', { max_uses: 1, ttl: '10m' });
    expect(created.statusCode).toBe(201);
    const { token } = created.json() as { token: string };
    const first = await createKeyAndCsr('joiner-1');
    const joined = await post('/v1/join', { token, worker_id: 'joiner-1', csr: first.csrPem });
    expect(joined.status).toBe(201);
    expect(joined.body.worker_id).toBe('joiner-1');
    expect(String(joined.body.certificate)).toContain('BEGIN CERTIFICATE');

    const second = await createKeyAndCsr('joiner-2');
    const refused = await post('/v1/join', { token, worker_id: 'joiner-2', csr: second.csrPem });
    expect(refused.status).toBe(401);
    expect(refused.body.error?.message).toContain('used up');

    // The certificate opens a channel for joiner-1.
    const connection = new AgentConnection({
      servers: [agentAddress],
      tls: () => ({ ca: caPem, cert: String(joined.body.certificate), key: first.keyPem }),
      log: silentLogger,
    });
    opened.push(connection);
    const link = new RemoteWorkerLink(connection);
    connection.start();
    await connection.connected(10_000);
    expect(await link.register(registration('joiner-1'))).toEqual({ created: true });
    await expectForbidden(link.heartbeat('joiner-2'));
  });

  it('renews a certificate over the channel, for the same worker only', async () => {
    const { connection } = await linkFor('renewer', 120_000);
    const { csrPem } = await createKeyAndCsr('someone-else');
    const renewed = await connection.call<{ certificate: string; expires_at: string }>('renew', [csrPem]);
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(renewed.certificate);
    expect(cert.subjectAltName).toContain('spiffe://aetherium/worker/renewer');
    expect(cert.subjectAltName).not.toContain('someone-else');
  });
});
