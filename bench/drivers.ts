/**
 * Driver benchmark: time from create() to a ready agent, and the time of one `echo`, for every driver
 * this host can run (plus `process` for reference). 20 VMs per driver, 4 booting at once.
 *
 *   npm run bench:drivers        (env: BENCH_VMS=20 BENCH_CONCURRENCY=4 BENCH_DRIVERS=process,sandbox,qemu)
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Table from 'cli-table3';
import type { DriverName } from '../src/domain/index.ts';
import type { VmDriver } from '../src/ports/vm-driver.ts';
import { createDriver } from '../src/adapters/vmm/create-driver.ts';
import { detectDrivers } from '../src/adapters/vmm/detect.ts';
import { ensureGuestImage } from '../src/adapters/vmm/qemu/image.ts';

const VMS = Number(process.env.BENCH_VMS ?? 20);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] ?? NaN;
}

async function bench(name: DriverName): Promise<{ create: number[]; echo: number[]; wall: number; errors: string[] }> {
  if (name === 'qemu') await ensureGuestImage({});
  const stateDir = await mkdtemp(join(tmpdir(), `aetherium-bench-${name}-`));
  const driver: VmDriver = createDriver(name, { stateDir });
  const create: number[] = [];
  const echo: number[] = [];
  const errors: string[] = [];
  const ids = Array.from({ length: VMS }, (_, i) => `bench-${name}-${i}`);
  let next = 0;
  const started = Date.now();
  const worker = async (): Promise<void> => {
    while (next < ids.length) {
      const id = ids[next++] as string;
      try {
        const t0 = performance.now();
        await driver.create({ id, name: id, vcpus: 1, memory_mb: 256, disk_gb: 1 });
        const t1 = performance.now();
        const result = await driver.exec(id, { command: 'echo', args: ['hello'] });
        const t2 = performance.now();
        if (result.stdout !== 'hello\n') throw new Error(`echo said ${JSON.stringify(result.stdout)}`);
        create.push(t1 - t0);
        echo.push(t2 - t1);
      } catch (err) {
        errors.push(`${id}: ${(err as Error).message}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const wall = Date.now() - started;
  for (const id of ids) await driver.delete(id).catch(() => {});
  await driver.close();
  await rm(stateDir, { recursive: true, force: true });
  return { create, echo, wall, errors };
}

const detected = await detectDrivers();
const wanted = (process.env.BENCH_DRIVERS?.split(',') ?? ['process', 'sandbox', 'qemu']) as DriverName[];
const names = wanted.filter((n) => n === 'process' || detected.available.includes(n));
const table = new Table({ head: ['driver', 'VMs ok', 'create→ready p50', 'p95', 'echo p50', 'p95', 'VMs/s'] });
for (const name of names) {
  process.stderr.write(`bench: ${name} (${VMS} VMs, ${CONCURRENCY} at once)…\n`);
  const r = await bench(name);
  const ms = (v: number): string => `${v.toFixed(v < 10 ? 1 : 0)} ms`;
  table.push([
    name,
    `${r.create.length}/${VMS}`,
    ms(percentile(r.create, 50)),
    ms(percentile(r.create, 95)),
    ms(percentile(r.echo, 50)),
    ms(percentile(r.echo, 95)),
    (r.create.length / (r.wall / 1000)).toFixed(2),
  ]);
  for (const e of r.errors.slice(0, 5)) process.stderr.write(`  error: ${e}\n`);
}
for (const n of wanted.filter((n) => !names.includes(n)))
  table.push([n, 'unavailable', detected.notes[n] ?? '', '', '', '', '']);
console.log(table.toString());
