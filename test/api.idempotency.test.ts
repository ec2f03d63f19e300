/**
 * `Idempotency-Key` on `POST /vms`, on the embedded system through inject(): the same key from the
 * same caller within 24 h answers with the same VM and task (and `Idempotent-Replayed: true`), never a
 * second VM, whether the requests follow each other, race, or the first one died between recording
 * the key and writing the VM. Another body is a 409, another caller's key is its own, and a key
 * past its 24 h makes a new VM.
 */
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createVmBody } from '../src/contract/requests.ts';
import { IDEMPOTENCY_TTL_MS, newId, requestFingerprint, VM_DEFAULTS } from '../src/domain/index.ts';
import { bearer } from './harness/auth.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

let t: TestSystem;

beforeAll(async () => {
  // Room for every VM these tests make, with the wait test's among them.
  t = await startTestSystem({
    worker: { resources: { cpu_cores: 64, memory_mb: 65_536, disk_gb: 1000, max_vms: 100 } },
  });
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

interface Answer {
  status: number;
  replayed: boolean;
  // biome-ignore lint/suspicious/noExplicitAny: the answers are read field by field below
  body: any;
}

const answer = (res: LightMyRequestResponse): Answer => ({
  status: res.statusCode,
  replayed: res.headers['idempotent-replayed'] === 'true',
  body: res.body ? JSON.parse(res.body) : null,
});

/** POST /vms with the admin key (or `token`'s) and, when given, an Idempotency-Key. */
async function create(body: object, key?: string, options: { token?: string; query?: string } = {}) {
  const headers = {
    ...(key === undefined ? {} : { 'idempotency-key': key }),
    ...(options.token ? bearer(options.token) : {}),
  };
  return answer(
    await t.app.inject({ method: 'POST', url: `/api/v1/vms${options.query ?? ''}`, payload: body, headers }),
  );
}

async function get(url: string) {
  return answer(await t.app.inject({ method: 'GET', url }));
}

/** How many VMs (deleted ones too) and create tasks there are with this name. */
async function countNamed(name: string) {
  const vms = (await get(`/api/v1/vms?name=${name}&include_deleted=true`)).body.vms as { id: string }[];
  let creates = 0;
  for (const vm of vms) creates += (await get(`/api/v1/tasks?vm_id=${vm.id}&type=vm:create`)).body.total as number;
  return { vms: vms.length, creates };
}

async function operatorKey(name: string): Promise<{ id: string; token: string }> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/tokens', payload: { name, role: 'operator' } });
  expect(res.statusCode).toBe(201);
  const body = JSON.parse(res.body) as { id: string; token: string };
  return { id: body.id, token: body.token };
}

const uniqueKey = () => `req-${newId()}`;

describe('Idempotency-Key on POST /vms', () => {
  it('two requests in a row with one key: one VM, the same task, and the second says it is a replay', async () => {
    const key = uniqueKey();
    const body = { name: 'idem-seq', vcpus: 1, memory_mb: 64 };
    const first = await create(body, key);
    expect(first.status).toBe(202);
    expect(first.replayed).toBe(false);
    expect(first.body.vm.name).toBe('idem-seq');

    const second = await create(body, key);
    expect(second.status).toBe(202);
    expect(second.replayed).toBe(true);
    expect(second.body.vm.id).toBe(first.body.vm.id);
    expect(second.body.task_id).toBe(first.body.task_id);
    expect(Object.keys(second.body).sort()).toEqual(['task_id', 'vm']);

    // The same request written otherwise (key order, a default spelled out) is the same request.
    const third = await create({ memory_mb: 64, disk_gb: VM_DEFAULTS.disk_gb, vcpus: 1, name: 'idem-seq' }, key);
    expect(third).toMatchObject({ status: 202, replayed: true, body: { task_id: first.body.task_id } });

    expect(await countNamed('idem-seq')).toEqual({ vms: 1, creates: 1 });
    expect((await get(`/api/v1/tasks/${first.body.task_id}`)).body).toMatchObject({
      type: 'vm:create',
      vm_id: first.body.vm.id,
    });
  });

  it('concurrent requests with one key: one VM, and exactly one answer is not a replay', async () => {
    const key = uniqueKey();
    const body = { name: 'idem-race', vcpus: 1, memory_mb: 64 };
    const answers = await Promise.all(Array.from({ length: 5 }, () => create(body, key)));
    for (const a of answers) expect(a.status).toBe(202);
    expect(new Set(answers.map((a) => a.body.vm.id)).size).toBe(1);
    expect(new Set(answers.map((a) => a.body.task_id)).size).toBe(1);
    expect(answers.filter((a) => !a.replayed)).toHaveLength(1);
    expect(await countNamed('idem-race')).toEqual({ vms: 1, creates: 1 });

    // Unnamed VMs too (their name comes from the id chosen with the key).
    const unnamed = uniqueKey();
    const racing = await Promise.all(Array.from({ length: 3 }, () => create({ memory_mb: 32 }, unnamed)));
    const [one] = racing;
    expect(new Set(racing.map((a) => a.body.vm.id)).size).toBe(1);
    expect(await countNamed(one!.body.vm.name)).toEqual({ vms: 1, creates: 1 });
  });

  it('the same key with another body is a 409 that says so, and creates nothing', async () => {
    const key = uniqueKey();
    const first = await create({ name: 'idem-body', memory_mb: 64 }, key);
    expect(first.status).toBe(202);
    for (const other of [
      { name: 'idem-body', memory_mb: 128 },
      { name: 'idem-body-2', memory_mb: 64 },
    ]) {
      const refused = await create(other, key);
      expect(refused.status).toBe(409);
      expect(refused.replayed).toBe(false);
      expect(refused.body.error.code).toBe('conflict');
      expect(refused.body.error.message).toMatch(/Idempotency-Key .* was already used for a different request/);
    }
    expect(await countNamed('idem-body')).toEqual({ vms: 1, creates: 1 });
    expect(await countNamed('idem-body-2')).toEqual({ vms: 0, creates: 0 });
  });

  it("another caller's key is its own: the same key from another API key makes another VM", async () => {
    const key = uniqueKey();
    const other = await operatorKey('idem-other-caller');
    const mine = await create({ memory_mb: 32 }, key);
    const theirs = await create({ memory_mb: 32 }, key, { token: other.token });
    expect(theirs.status).toBe(202);
    expect(theirs.replayed).toBe(false);
    expect(theirs.body.vm.id).not.toBe(mine.body.vm.id);
    // Each caller replays its own.
    expect((await create({ memory_mb: 32 }, key, { token: other.token })).body.vm.id).toBe(theirs.body.vm.id);
    expect((await create({ memory_mb: 32 }, key)).body.vm.id).toBe(mine.body.vm.id);
  });

  it('a key that is not 1-255 printable ASCII characters without spaces is a 400 naming the header', async () => {
    const before = (await get('/api/v1/vms?include_deleted=true&limit=1000')).body.total;
    for (const bad of ['', 'x'.repeat(256), 'has space', 'tab\there', 'caf\u00e9']) {
      const refused = await create({ name: 'idem-bad-key', memory_mb: 32 }, bad);
      expect(refused.status, JSON.stringify(bad)).toBe(400);
      // The route's schema (src/contract) refuses it before the handler, naming the header.
      expect(refused.body.error.code).toBe('validation_failed');
      expect(refused.body.error.message).toMatch(/^invalid headers: idempotency-key: Idempotency-Key is 1-255/);
    }
    // The service refuses such a key from any other caller too.
    await expect(
      t.system.controlPlane.vms.create(createVmBody.parse({}), { idempotency: { scope: 'local', key: 'a b' } }),
    ).rejects.toMatchObject({ code: 'bad_request', message: expect.stringMatching(/Idempotency-Key/) });
    // The longest and the oddest keys that are allowed work.
    for (const good of ['x'.repeat(255), '!~"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}']) {
      expect((await create({ memory_mb: 32 }, good)).status).toBe(202);
    }
    expect((await get('/api/v1/vms?include_deleted=true&limit=1000')).body.total).toBe(before + 2);
  });

  it('?wait=true works on a replay: the same status rules and body as the first answer', async () => {
    const key = uniqueKey();
    const body = { name: 'idem-wait', memory_mb: 64 };
    const first = await create(body, key, { query: '?wait=true&timeout=60' });
    expect(first.status).toBe(201);
    expect(first.body.vm.status).toBe('running');
    const again = await create(body, key, { query: '?wait=true&timeout=60' });
    expect(again.status).toBe(201);
    expect(again.replayed).toBe(true);
    expect(again.body).toMatchObject({
      vm: { id: first.body.vm.id, status: 'running' },
      task_id: first.body.task_id,
      task: { id: first.body.task_id, status: 'completed' },
    });
    // Without wait, a replay answers 202 with the VM as it is now.
    const plain = await create(body, key);
    expect(plain).toMatchObject({ status: 202, replayed: true, body: { vm: { status: 'running' } } });
    expect(await countNamed('idem-wait')).toEqual({ vms: 1, creates: 1 });
  });

  it('a VM created with the key and deleted since replays as that deleted VM and its task', async () => {
    const key = uniqueKey();
    const body = { name: 'idem-deleted', memory_mb: 64 };
    const first = await create(body, key);
    const deleted = await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/idem-deleted?wait=true' });
    expect(deleted.statusCode).toBe(200);
    const replay = await create(body, key);
    expect(replay.status).toBe(202);
    expect(replay.replayed).toBe(true);
    expect(replay.body.vm.id).toBe(first.body.vm.id);
    expect(replay.body.vm.deleted_at).not.toBeNull();
    expect(replay.body.task_id).toBe(first.body.task_id);
    expect(await countNamed('idem-deleted')).toEqual({ vms: 1, creates: 1 });
    // The name is free again for a request without the key.
    expect((await create(body)).status).toBe(202);
  });

  it('an error is not the recorded answer: a name taken at first is refused, then made once it is free', async () => {
    const taken = await create({ name: 'idem-taken', memory_mb: 32 });
    expect(taken.status).toBe(202);
    const key = uniqueKey();
    const body = { name: 'idem-taken', memory_mb: 64 };
    const refused = await create(body, key);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/a VM named "idem-taken" already exists/);
    expect((await t.app.inject({ method: 'DELETE', url: '/api/v1/vms/idem-taken?wait=true' })).statusCode).toBe(200);
    const made = await create(body, key);
    expect(made.status).toBe(202);
    expect(made.body.vm).toMatchObject({ name: 'idem-taken', memory_mb: 64 });
    expect((await create(body, key)).body.vm.id).toBe(made.body.vm.id);
    expect(await countNamed('idem-taken')).toEqual({ vms: 2, creates: 2 }); // the first one, deleted, and this
  });

  it('a key past its 24 h makes a new VM; until then it replays', async () => {
    const vms = t.system.controlPlane.vms;
    const key = uniqueKey();
    const body = { memory_mb: 32, labels: { test: 'expiry' } };
    const start = Date.now();
    const first = await create(body, key);
    try {
      vms.idempotencyClock = () => new Date(start + IDEMPOTENCY_TTL_MS - 60_000);
      const before = await create(body, key);
      expect(before.replayed).toBe(true);
      expect(before.body.vm.id).toBe(first.body.vm.id);

      vms.idempotencyClock = () => new Date(start + IDEMPOTENCY_TTL_MS + 60_000);
      const after = await create(body, key);
      expect(after.status).toBe(202);
      expect(after.replayed).toBe(false);
      expect(after.body.vm.id).not.toBe(first.body.vm.id);
      expect(after.body.task_id).not.toBe(first.body.task_id);
      // The new VM is the key's from now on.
      expect((await create(body, key)).body.vm.id).toBe(after.body.vm.id);
    } finally {
      vms.idempotencyClock = () => new Date();
    }
  });

  it('a key recorded by a request that died before writing its VM: a retry writes it with the recorded ids', async () => {
    const caller = await operatorKey('idem-crashed-caller');
    const key = uniqueKey();
    const body = { name: 'idem-crash', vcpus: 2, memory_mb: 64 };
    // What the crashed request did: chose the ids and recorded them with the key, then nothing.
    const vmId = newId();
    const taskId = newId();
    const { created } = await t.system.controlPlane.ledger.store.claimIdempotencyKey({
      scope: `key:${caller.id}`,
      key,
      fingerprint: requestFingerprint('vm:create', createVmBody.parse(body)),
      vm_id: vmId,
      task_id: taskId,
      now: new Date(),
      ttl_ms: IDEMPOTENCY_TTL_MS,
    });
    expect(created).toBe(true);
    expect((await get(`/api/v1/vms/${vmId}`)).status).toBe(404);

    // Another body with that key is still refused.
    expect((await create({ ...body, vcpus: 1 }, key, { token: caller.token })).status).toBe(409);

    // Its client retries, several times at once: each finds the key without a VM and writes it.
    const retries = await Promise.all(Array.from({ length: 3 }, () => create(body, key, { token: caller.token })));
    for (const retry of retries) {
      expect(retry.status).toBe(202);
      expect(retry.body.vm).toMatchObject({ id: vmId, name: 'idem-crash', vcpus: 2 });
      expect(retry.body.task_id).toBe(taskId);
    }
    expect(retries.filter((r) => !r.replayed)).toHaveLength(1); // the one whose write went in
    expect((await get(`/api/v1/tasks/${taskId}`)).body).toMatchObject({ id: taskId, type: 'vm:create', vm_id: vmId });

    const again = await create(body, key, { token: caller.token, query: '?wait=true&timeout=60' });
    expect(again).toMatchObject({ status: 201, replayed: true, body: { vm: { id: vmId, status: 'running' } } });
    expect(await countNamed('idem-crash')).toEqual({ vms: 1, creates: 1 });
  });

  it('raced in the service itself, with no HTTP in between: still one VM, written by exactly one call', async () => {
    const vms = t.system.controlPlane.vms;
    const input = createVmBody.parse({ name: 'idem-service-race', memory_mb: 32 });
    const idempotency = { scope: 'local', key: uniqueKey() };
    // Without a record, and with one left by a request that died before writing its VM.
    const crashed = { scope: 'local', key: uniqueKey() };
    const crashedInput = createVmBody.parse({ name: 'idem-service-crash', memory_mb: 32 });
    const recorded = { vm_id: newId(), task_id: newId() };
    await t.system.controlPlane.ledger.store.claimIdempotencyKey({
      ...crashed,
      ...recorded,
      fingerprint: requestFingerprint('vm:create', crashedInput),
      now: new Date(),
      ttl_ms: IDEMPOTENCY_TTL_MS,
    });
    for (const [body, options] of [
      [input, { idempotency }],
      [crashedInput, { idempotency: crashed }],
    ] as const) {
      const results = await Promise.all(Array.from({ length: 5 }, () => vms.create(body, options)));
      expect(new Set(results.map((r) => r.vm.id)).size).toBe(1);
      expect(new Set(results.map((r) => r.task.id)).size).toBe(1);
      expect(results.filter((r) => !r.replayed)).toHaveLength(1);
      expect(await countNamed(body.name!)).toEqual({ vms: 1, creates: 1 });
    }
    expect((await get(`/api/v1/vms/${recorded.vm_id}`)).body).toMatchObject({ name: 'idem-service-crash' });
  });

  it('OpenAPI documents the header on POST /vms', async () => {
    const doc = (await get('/api/docs/json')).body;
    const parameters = doc.paths['/api/v1/vms'].post.parameters as { in: string; name: string; required: boolean }[];
    expect(parameters).toEqual(
      expect.arrayContaining([expect.objectContaining({ in: 'header', name: 'idempotency-key', required: false })]),
    );
  });

  it('requests without the header are not affected: each one makes a VM', async () => {
    const a = await create({ memory_mb: 32 });
    const b = await create({ memory_mb: 32 });
    expect(a.replayed || b.replayed).toBe(false);
    expect(a.body.vm.id).not.toBe(b.body.vm.id);
  });

  // Last: it forgets every key of this file.
  it("the reaper's pass deletes expired keys (at most every 10 minutes per replica)", async () => {
    const reaper = t.system.controlPlane.reaper;
    const later = Date.now() + 2 * IDEMPOTENCY_TTL_MS;
    expect(await reaper.pruneIdempotencyKeys(new Date(later))).toBeGreaterThan(5);
    expect(await reaper.pruneIdempotencyKeys(new Date(later + 60_000))).toBe(0); // too soon: not even asked
  });
});
