import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AetheriumError } from '../src/domain/index.ts';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import { ProcessDriver } from '../src/adapters/vmm/process/process-driver.ts';
import { driverConformance, eventually, hostProcessesWithArg } from './conformance/driver.suite.ts';

driverConformance('process', async (stateDir) => new ProcessDriver({ stateDir }));

describe('process driver', () => {
  let stateDir: string;
  let driver: ProcessDriver;
  const id = `proc-${randomUUID()}`;

  beforeAll(async () => {
    stateDir = await mkdtemp(join(tmpdir(), 'aetherium-process-'));
    driver = new ProcessDriver({ stateDir });
    await driver.create({ id, name: 'plain', vcpus: 1, memory_mb: 64, disk_gb: 1 });
  });

  afterAll(async () => {
    await driver.delete(id);
    await driver.close();
    await rm(stateDir, { recursive: true, force: true });
  });

  it('says loudly that it isolates nothing', () => {
    expect(driver.info.name).toBe('process');
    expect(driver.info.isolation).toBe('none');
    expect(driver.info.warnings.join(' ')).toMatch(/NO ISOLATION/);
  });

  it("runs commands on the host, in the VM's directory, with HOME there", async () => {
    const root = join(stateDir, id, 'root');
    const result = await driver.exec(id, { command: 'sh', args: ['-c', 'pwd; echo "$HOME"'] });
    expect(result.stdout).toBe(`${root}\n${root}\n`);
  });

  it('kills what a command left behind in its process group when it exits', async () => {
    const marker = `0.000${Date.now()}`;
    const result = await driver.exec(id, {
      command: 'sh',
      args: ['-c', `sleep 600 ${marker} >/dev/null 2>&1 & echo started`],
    });
    expect(result.stdout).toBe('started\n');
    expect(await eventually(() => hostProcessesWithArg(marker).length === 0, 2_000)).toBe(true);
  });

  it('createDriver builds every known driver and refuses an unknown name with the list', () => {
    for (const name of ['process', 'sandbox', 'qemu', 'firecracker'] as const)
      expect(createDriver(name, { stateDir }).info.name).toBe(name);
    let error: unknown;
    try {
      createDriver('vmware' as never, { stateDir });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AetheriumError);
    expect((error as AetheriumError).code).toBe('validation_failed');
    expect((error as AetheriumError).message).toMatch(
      /unknown driver "vmware"; known drivers: sandbox, process, qemu, firecracker/,
    );
  });
});
