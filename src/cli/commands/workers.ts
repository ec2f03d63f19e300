/** `aetherium workers …` and `aetherium cluster …`. */
import type { Command } from 'commander';
import type { ApiClient } from '../api-client.ts';
import { printFields, printJson, printTable } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';

type WorkerStats = Record<string, unknown> & { id: string };

export function registerWorkerCommands(program: Command, client: () => ApiClient, global: () => GlobalOptions): void {
  const workers = program.command('workers').alias('worker-ls').description('inspect and control workers');

  workers
    .command('list')
    .alias('ls')
    .description('list workers')
    .option('--zone <zone>', 'only this zone')
    .option('--status <status>', 'active | draining | offline')
    .action(async (o) => {
      const params = new URLSearchParams();
      if (o.zone) params.set('zone', o.zone);
      if (o.status) params.set('status', o.status);
      const data = await client().get<{ workers: WorkerStats[]; total: number }>(`/workers${params.size ? `?${params}` : ''}`);
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'ZONE', 'STATUS', 'HEALTHY', 'VMS', 'CPU %', 'MEM %', 'DRIVERS', 'UPTIME'],
        data.workers.map((w) => [w.id, w.zone as string, w.status as string, w.is_healthy as boolean, `${w.vm_count}/${w.max_vms}`, w.cpu_usage_percent as number, w.memory_usage_percent as number, (w.capabilities as string[]).join(','), w.uptime as string]),
      );
    });

  workers
    .command('get')
    .description('show one worker')
    .argument('<id>')
    .action(async (id: string) => {
      const data = await client().get<WorkerStats>(`/workers/${encodeURIComponent(id)}`);
      if (global().json) return printJson(data);
      printFields(data);
    });

  workers
    .command('drain')
    .description('stop placing new VMs on a worker')
    .argument('<id>')
    .option('--message <text>', 'why, for the audit trail')
    .action(async (id: string, o) => {
      const { data } = await client().post<WorkerStats>(`/workers/${encodeURIComponent(id)}/drain`, o.message ? { message: o.message } : {});
      if (global().json) return printJson(data);
      process.stdout.write(`worker ${id} is ${data.status}: no new VMs will be placed on it\n`);
    });

  workers
    .command('activate')
    .description('let a drained worker take VMs again')
    .argument('<id>')
    .action(async (id: string) => {
      const { data } = await client().post<WorkerStats>(`/workers/${encodeURIComponent(id)}/activate`);
      if (global().json) return printJson(data);
      process.stdout.write(`worker ${id} is ${data.status}\n`);
    });

  const cluster = program.command('cluster').description('cluster-wide views');
  cluster
    .command('stats')
    .description('totals, usage and free capacity')
    .action(async () => {
      const data = await client().get<Record<string, unknown>>('/cluster/stats');
      if (global().json) return printJson(data);
      printFields(data);
    });
  cluster
    .command('distribution')
    .description('which VMs run where')
    .action(async () => {
      const data = await client().get<{ distribution: (Record<string, unknown> & { vms: { name: string }[] })[] }>('/cluster/distribution');
      if (global().json) return printJson(data);
      printTable(
        ['WORKER', 'ZONE', 'STATUS', 'VMS', 'NAMES'],
        data.distribution.map((d) => [d.worker_id as string, d.zone as string, d.status as string, `${d.vm_count}/${d.max_vms}`, d.vms.map((v) => v.name).join(', ').slice(0, 60)]),
      );
    });
}
