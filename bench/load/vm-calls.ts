/** Creating and deleting VMs through the API as clients do, `?wait=true`, a bounded number at a time. */
import type { ControlPlane } from './control-plane.ts';
import { pool } from './stats.ts';

/** A small VM on the process driver: the scheduler's numbers, not a host's, are what is measured. */
export const SMALL_VM = { driver: 'process', vcpus: 1, memory_mb: 16, disk_gb: 1 } as const;

export interface Batch {
  /** Ids of the VMs the calls succeeded for. */
  ids: string[];
  /** Round trip of each successful call, ms. */
  latencies: number[];
  seconds: number;
  /** What went wrong, one line per failed call. */
  failures: string[];
  /** Calls never made: the phase ran out of time first. */
  skipped: number;
}

interface Created {
  vm?: { id: string; status: string };
  task?: { status: string; error: string | null };
}

/** `seconds`: no new call starts after that long (the ones in flight finish). */
export async function createVms(
  cp: ControlPlane,
  count: number,
  concurrency: number,
  seconds = Infinity,
): Promise<Batch> {
  const batch: Batch = { ids: [], latencies: [], seconds: 0, failures: [], skipped: 0 };
  const t0 = performance.now();
  await pool(count, concurrency, async () => {
    const started = performance.now();
    if (started - t0 > seconds * 1000) {
      batch.skipped++;
      return;
    }
    try {
      const { status, body } = await cp.api<Created>('POST', '/vms?wait=true&timeout=120', SMALL_VM);
      if (status !== 201 || body.task?.status !== 'completed' || !body.vm) {
        batch.failures.push(
          `POST /vms: ${status} ${body.task?.status ?? ''} ${body.task?.error ?? JSON.stringify(body)}`,
        );
        if (body.vm) batch.ids.push(body.vm.id);
        return;
      }
      batch.latencies.push(performance.now() - started);
      batch.ids.push(body.vm.id);
    } catch (err) {
      batch.failures.push(`POST /vms: ${(err as Error).message}`);
    }
  });
  batch.seconds = (performance.now() - t0) / 1000;
  return batch;
}

export async function deleteVms(
  cp: ControlPlane,
  ids: string[],
  concurrency: number,
  seconds = Infinity,
): Promise<Batch> {
  const batch: Batch = { ids: [], latencies: [], seconds: 0, failures: [], skipped: 0 };
  const t0 = performance.now();
  await pool(ids.length, concurrency, async (i) => {
    const id = ids[i]!;
    const started = performance.now();
    if (started - t0 > seconds * 1000) {
      batch.skipped++;
      return;
    }
    try {
      const { status, body } = await cp.api<{ status: string; error: string | null }>(
        'DELETE',
        `/vms/${id}?wait=true&timeout=120`,
      );
      if (status !== 200 || body.status !== 'completed') {
        batch.failures.push(`DELETE /vms/${id}: ${status} ${body.status} ${body.error ?? ''}`);
        return;
      }
      batch.latencies.push(performance.now() - started);
      batch.ids.push(id);
    } catch (err) {
      batch.failures.push(`DELETE /vms/${id}: ${(err as Error).message}`);
    }
  });
  batch.seconds = (performance.now() - t0) / 1000;
  return batch;
}

export interface Capacity {
  total_vms: number;
  used_cpu_cores: number;
  used_memory_mb: number;
  used_disk_gb: number;
}

export async function capacity(cp: ControlPlane): Promise<Capacity> {
  const { body } = await cp.api<Capacity>('GET', '/cluster/stats');
  return body;
}

/** Polls the cluster's totals until nothing is used; the time it took, or NaN when it never did. */
export async function capacityReturnsToZero(
  cp: ControlPlane,
  timeoutMs: number,
): Promise<{ ms: number; last: Capacity }> {
  const t0 = performance.now();
  for (;;) {
    const last = await capacity(cp);
    const ms = performance.now() - t0;
    if (!last.total_vms && !last.used_cpu_cores && !last.used_memory_mb && !last.used_disk_gb) return { ms, last };
    if (ms > timeoutMs) return { ms: Number.NaN, last };
    await new Promise((r) => setTimeout(r, 100));
  }
}
