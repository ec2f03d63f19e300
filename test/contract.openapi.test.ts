/**
 * The contract: the OpenAPI document is valid, every route under /api/v1 is in the contract table
 * (src/contract/routes.ts) with a schema for each answer, and the real answers of a run through
 * every route match the document, checked by a JSON Schema validator that knows nothing of zod.
 */
import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMON_ERROR_STATUSES } from '../src/contract/errors.ts';
import { ROUTES, type RouteName, type RouteSpec } from '../src/contract/routes.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

const FINGERPRINT = `sha256:${'ab'.repeat(32)}`;
const SNAPSHOT = new URL('../docs/openapi.json', import.meta.url);

let t: TestSystem;
// biome-ignore lint/suspicious/noExplicitAny: the document is JSON, walked by path
let doc: any;
const ajv = new Ajv2020({ strict: false, allErrors: true });
// ajv-formats is CommonJS: its default export is the plugin function.
(formats as unknown as (a: Ajv2020) => void)(ajv);

beforeAll(async () => {
  t = await startTestSystem({}, { agentCaFingerprint: FINGERPRINT });
  doc = JSON.parse((await t.app.inject({ method: 'GET', url: '/api/docs/json' })).body);
  ajv.addSchema({ $id: 'doc', components: doc.components });
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

/** `/vms/:id` as OpenAPI spells it: `/api/v1/vms/{id}`. */
const openApiPath = (spec: RouteSpec) => `/api/v1${spec.path.replace(/:([a-z_]+)/g, '{$1}')}`;

function responseSchema(name: RouteName, status: number) {
  const spec: RouteSpec = ROUTES[name];
  const operation = doc.paths[openApiPath(spec)]?.[spec.method.toLowerCase()];
  const schema = operation?.responses?.[String(status)]?.content?.['application/json']?.schema;
  if (!schema) return null;
  // Components are referenced as `#/components/…`: resolve them in the document added as `doc`.
  return JSON.parse(JSON.stringify(schema).replaceAll('"#/components/', '"doc#/components/'));
}

describe('the OpenAPI document', () => {
  it('is a valid OpenAPI 3.1 document', async () => {
    const result = await new Validator().validate(doc);
    expect(result.errors ?? [], JSON.stringify(result.errors, null, 2)).toEqual([]);
    expect(result.valid).toBe(true);
    expect(doc.openapi).toBe('3.1.0');
  });

  it('holds exactly the routes of the contract table, each with its answers and errors', () => {
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>)
      .filter(([path]) => path.startsWith('/api/v1/') && path !== '/api/v1/health')
      .flatMap(([path, operations]) => Object.keys(operations).map((method) => `${method.toUpperCase()} ${path}`));
    const contract = Object.values(ROUTES as Record<string, RouteSpec>)
      .filter((spec) => spec.path !== '/health')
      .map((spec) => `${spec.method} ${openApiPath(spec)}`);
    expect(documented.sort()).toEqual(contract.sort());

    for (const [name, spec] of Object.entries(ROUTES as Record<string, RouteSpec>)) {
      const operation = doc.paths[openApiPath(spec)][spec.method.toLowerCase()];
      expect(operation.operationId, name).toBe(name);
      if (!spec.websocket) {
        const success = Object.keys(operation.responses).filter((s) => s.startsWith('2'));
        expect(success.length, `${name} documents a success answer`).toBeGreaterThan(0);
        for (const status of success) expect(responseSchema(name as RouteName, Number(status)), name).not.toBeNull();
      }
      for (const status of [...COMMON_ERROR_STATUSES, ...(spec.errors ?? [])]) {
        if (name === 'health') continue;
        expect(
          operation.responses[String(status)]?.content?.['application/json']?.schema?.$ref,
          `${name} ${status}`,
        ).toBe('#/components/schemas/Error');
      }
    }
  });

  it('is the one checked in (docs/openapi.json): a change to the API is a change to this file', () => {
    // Regenerate with `npm run docs:openapi` after changing a route, and review the diff.
    const checkedIn = JSON.parse(readFileSync(SNAPSHOT, 'utf8'));
    expect({ ...doc, info: { ...doc.info, version: 'x' } }).toEqual({
      ...checkedIn,
      info: { ...checkedIn.info, version: 'x' },
    });
  });
});

describe('real answers match the document', () => {
  const answered = new Map<RouteName, Set<number>>();

  /** One call to a route of the table, its answer checked against the document's schema for its status. */
  async function call(
    name: RouteName,
    options: { params?: Record<string, string>; query?: string; body?: unknown; token?: string } = {},
  ) {
    const spec: RouteSpec = ROUTES[name];
    const path = spec.path.replace(/:([a-z_]+)/g, (_m, key: string) => encodeURIComponent(options.params?.[key] ?? ''));
    const response = await t.app.inject({
      method: spec.method,
      url: `/api/v1${path}${options.query ? `?${options.query}` : ''}`,
      ...(options.body === undefined ? {} : { payload: options.body as object }),
      ...(options.token ? { headers: { authorization: `Bearer ${options.token}` } } : {}),
    });
    const body = response.body ? JSON.parse(response.body) : null;
    const schema = responseSchema(name, response.statusCode);
    expect(schema, `${name} answered ${response.statusCode}, which its route does not document`).not.toBeNull();
    const validate = ajv.compile(schema);
    expect(validate(body), `${name} ${response.statusCode}: ${JSON.stringify(validate.errors)}`).toBe(true);
    answered.set(name, (answered.get(name) ?? new Set()).add(response.statusCode));
    return { status: response.statusCode, body };
  }

  it('through every route, successes and errors alike', async () => {
    expect((await call('health')).status).toBe(200);
    expect((await call('whoami')).body).toMatchObject({ kind: 'key', role: 'admin', auth_enabled: true });
    expect((await call('authConfig')).body).toEqual({ auth_enabled: true, oidc: null });
    const verifier = 'v'.repeat(43);
    const noOidc = { code: 'c', code_verifier: verifier, redirect_uri: 'http://localhost/auth/callback' };
    expect((await call('oidcToken', { body: noOidc })).status).toBe(404);
    expect((await call('oidcToken', { body: { ...noOidc, code_verifier: 'short' } })).status).toBe(400);
    const created = await call('createVm', { query: 'wait=true&timeout=60', body: { name: 'contract-vm' } });
    expect(created.status).toBe(201);
    const vm = created.body.vm;
    expect((await call('createVm', { body: { vcpus: 0 } })).status).toBe(400);
    expect((await call('listVms')).body.total).toBe(1);
    expect((await call('getVm', { params: { id: 'contract-vm' } })).body.id).toBe(vm.id);
    expect((await call('getVm', { params: { id: 'ghost' } })).status).toBe(404);
    const ran = await call('execVm', { params: { id: vm.id }, body: { command: 'echo', args: ['hi'] } });
    expect(ran.body).toMatchObject({ exit_code: 0, stdout: 'hi\n' });
    expect((await call('listExecutions', { params: { id: vm.id } })).body.total).toBe(1);
    expect((await call('stopVm', { params: { id: vm.id }, query: 'wait=true' })).body.status).toBe('completed');
    expect((await call('startVm', { params: { id: vm.id }, query: 'wait=true' })).body.status).toBe('completed');

    const tasks = (await call('listTasks', { query: 'limit=1000' })).body.tasks;
    expect(new Set(tasks.map((task: { type: string }) => task.type))).toEqual(
      new Set(['vm:create', 'vm:execute', 'vm:stop', 'vm:start']),
    );
    expect((await call('getTask', { params: { id: created.body.task_id } })).body.type).toBe('vm:create');
    expect((await call('cancelTask', { params: { id: created.body.task_id } })).status).toBe(409);
    const pending = await call('createVm', { body: { name: 'too-big', memory_mb: 1_000_000 } });
    expect(pending.status).toBe(202);
    expect((await call('cancelTask', { params: { id: pending.body.task_id } })).body.outcome).toBe('cancelled');

    expect((await call('listWorkers')).body.total).toBe(1);
    expect((await call('getWorker', { params: { id: 'test-worker' } })).body.id).toBe('test-worker');
    expect((await call('getWorker', { params: { id: 'ghost' } })).status).toBe(404);
    expect((await call('listWorkerVms', { params: { id: 'test-worker' } })).body).toMatchObject({
      worker_id: 'test-worker',
      total: 1,
    });
    await call('workerMetrics', { params: { id: 'test-worker' } });
    // Worker logs travel on the agent channel, which `aetherium dev` has not: a documented 404.
    expect((await call('workerLogs', { params: { id: 'test-worker' } })).status).toBe(404);
    expect((await call('planSchedule', { body: { vcpus: 1 } })).body.placement?.worker_id).toBe('test-worker');
    expect((await call('clusterStats')).body.total_workers).toBe(1);
    expect((await call('clusterDistribution')).body).toMatchObject({ total_workers: 1, total_vms: 1 });
    expect(
      (await call('setEligibility', { params: { id: 'test-worker' }, body: { eligible: false } })).body,
    ).toMatchObject({ worker_id: 'test-worker', status: 'active' });
    expect(
      (await call('drainWorker', { params: { id: 'test-worker' }, body: { no_deadline: true } })).body.status,
    ).toBe('draining');
    expect((await call('activateWorker', { params: { id: 'test-worker' } })).body.status).toBe('active');
    expect((await call('deleteVm', { params: { id: vm.id }, query: 'wait=true' })).status).toBe(200);

    const key = await call('createToken', { body: { name: 'contract-viewer', role: 'viewer' } });
    expect(key.status).toBe(201);
    expect((await call('createVm', { body: {}, token: key.body.token })).status).toBe(403);
    expect((await call('listVms', { token: 'ae_0000000000000000_nope' })).status).toBe(401);
    expect((await call('listTokens')).body.total).toBeGreaterThan(0);
    expect((await call('revokeToken', { params: { id: 'contract-viewer' } })).body.revoked_at).not.toBeNull();
    const join = await call('createJoinToken', { body: { description: 'contract' } });
    expect(join.body.ca_fingerprint).toBe(FINGERPRINT);
    expect((await call('listJoinTokens')).body.total).toBe(1);
    expect((await call('revokeJoinToken', { params: { id: join.body.id } })).body.state).toBe('revoked');
    expect((await call('revokeWorker', { params: { id: 'test-worker' } })).body.worker_id).toBe('test-worker');
    expect((await call('bootstrap')).status).toBe(409);
    expect((await call('audit', { query: 'limit=5' })).body.entries.length).toBeGreaterThan(0);

    const missed = (Object.keys(ROUTES) as RouteName[]).filter(
      (name) => !(ROUTES[name] as RouteSpec).websocket && !answered.has(name),
    );
    expect(missed, 'every route of the contract was called').toEqual([]);
  }, 120_000);
});
