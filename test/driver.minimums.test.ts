/**
 * The least a VM must ask for on each driver (DRIVER_MINIMUMS): POST /vms with an explicit driver
 * below it is a 400 saying what the driver needs, before anything is written or scheduled; at the
 * minimum, or without a driver, the VM is accepted (the scheduler then picks a driver it fits).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DRIVER_MINIMUMS } from '../src/domain/index.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

let t: TestSystem;

beforeAll(async () => {
  t = await startTestSystem({ api_gateway: { auth: { enabled: false } } });
}, 120_000);

afterAll(async () => {
  await t?.stop();
});

async function post(payload: object): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await t.app.inject({ method: 'POST', url: '/api/v1/vms', payload });
  return { status: res.statusCode, body: JSON.parse(res.body) as Record<string, unknown> };
}

describe('POST /vms against the driver minimums', () => {
  it('refuses a VM below the minimum of the driver it asks for, with a 400 that says what the driver needs', async () => {
    const res = await post({ name: 'too-small-qemu', driver: 'qemu', memory_mb: 16 });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: 'validation_failed',
      message: `the qemu driver needs at least ${DRIVER_MINIMUMS.qemu.memory_mb} MB of memory to boot a VM; 16 MB was asked for`,
      details: { driver: 'qemu', minimum: DRIVER_MINIMUMS.qemu },
    });
    const firecracker = await post({ name: 'too-small-fc', driver: 'firecracker', memory_mb: 64 });
    expect(firecracker.status).toBe(400);
    expect((firecracker.body.error as { message: string }).message).toMatch(/firecracker driver needs at least 128 MB/);
    // Nothing was written: the name is still free.
    const list = await t.app.inject({ method: 'GET', url: '/api/v1/vms?name=too-small-qemu' });
    expect(JSON.parse(list.body)).toMatchObject({ vms: [] });
  });

  it('accepts a VM at the minimum, or one that names no driver', async () => {
    const atMinimum = await post({ name: 'just-enough', driver: 'qemu', memory_mb: DRIVER_MINIMUMS.qemu.memory_mb });
    expect(atMinimum.status).toBe(202);
    const anyDriver = await post({ name: 'small-any', memory_mb: 16 });
    expect(anyDriver.status).toBe(202);
    const small = await post({ name: 'small-process', driver: 'process', memory_mb: 16 });
    expect(small.status).toBe(202);
    for (const name of ['just-enough', 'small-any', 'small-process'])
      await t.app.inject({ method: 'DELETE', url: `/api/v1/vms/${name}?wait=true` });
  });
});
