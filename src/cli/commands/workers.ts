/** `aetherium workers …` and `aetherium cluster …`. */
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import { type ApiClient, CliError } from '../api-client.ts';
import { authHeaders } from '../credentials.ts';
import { printFields, printJson, printTable } from '../format.ts';
import { streamLines } from '../http.ts';
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
      const data = await client().get<{ workers: WorkerStats[]; total: number }>(
        `/workers${params.size ? `?${params}` : ''}`,
      );
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'ZONE', 'STATUS', 'HEALTHY', 'VMS', 'CPU %', 'MEM %', 'DRIVERS', 'UPTIME'],
        data.workers.map((w) => [
          w.id,
          w.zone as string,
          w.status as string,
          w.is_healthy as boolean,
          `${w.vm_count}/${w.max_vms}`,
          w.cpu_usage_percent as number,
          w.memory_usage_percent as number,
          (w.capabilities as string[]).join(','),
          w.uptime as string,
        ]),
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
    .description('drain a worker: no new VMs; queued creates move elsewhere; VMs left at the deadline are deleted')
    .argument('<id>')
    .option('--deadline <duration>', 'how long VMs may keep running, e.g. 90s, 5m, 1h (default 1h)')
    .option('--force', 'delete its VMs now')
    .option('--no-deadline', 'let its VMs run until they are deleted')
    .option('--message <text>', 'why, for the record and the events')
    .option('--wait', 'show progress until the worker is drained')
    .action(async (id: string, o) => {
      const body: Record<string, unknown> = {};
      if (o.deadline) {
        const ms = parseDuration(o.deadline);
        if (ms === null) throw new CliError(`--deadline ${o.deadline}: expected a duration such as 90s, 5m or 1h`);
        body.deadline_seconds = Math.ceil(ms / 1000);
      }
      if (o.force) body.force = true;
      if (o.deadline === false) body.no_deadline = true;
      if (o.message) body.message = o.message;
      const { data } = await client().post<WorkerStats>(`/workers/${encodeURIComponent(id)}/drain`, body);
      if (global().json && !o.wait) return printJson(data);
      const drain = data.drain as { deadline: string | null } | null;
      process.stdout.write(
        `worker ${id} is draining${drain?.deadline ? ` (deadline ${drain.deadline})` : ' (no deadline)'}: no new VMs will be placed on it\n`,
      );
      if (!o.wait) return;
      for (;;) {
        const w = await client().get<WorkerStats>(`/workers/${encodeURIComponent(id)}`);
        const state = w.drain as { drained_at: string | null } | null;
        if (!state) return void process.stdout.write(`worker ${id} was activated again; drain abandoned\n`);
        if (state.drained_at)
          return void process.stdout.write(`worker ${id} is drained: no VM left (${state.drained_at})\n`);
        process.stdout.write(`  ${new Date().toISOString()}  ${w.vm_count} VM(s) left\n`);
        await new Promise((r) => setTimeout(r, 2000));
      }
    });

  workers
    .command('eligibility')
    .description('turn new placements on a worker on or off, without draining it')
    .argument('<id>')
    .argument('<on|off>')
    .action(async (id: string, value: string) => {
      if (value !== 'on' && value !== 'off') throw new CliError('eligibility is "on" or "off"');
      const { data } = await client().post<WorkerStats>(`/workers/${encodeURIComponent(id)}/eligibility`, {
        eligible: value === 'on',
      });
      if (global().json) return printJson(data);
      process.stdout.write(`worker ${id} ${data.eligible ? 'takes' : 'takes no'} new VMs\n`);
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

  workers
    .command('logs')
    .description("a worker's recent log lines, from the buffer it keeps (-f: follow them live)")
    .argument('<id>')
    .option('-f, --follow', 'keep printing new lines until interrupted', false)
    .option('--since <when>', 'only lines since then: a duration back from now (10m) or an RFC 3339 time')
    .option('-n, --limit <n>', 'at most this many past lines', '200')
    .action(async (id: string, o: { follow: boolean; since?: string; limit: string }) => {
      const query = new URLSearchParams({ limit: o.limit, ...(o.since ? { since: o.since } : {}) });
      const print = (line: Record<string, unknown>) =>
        process.stdout.write(global().json ? `${JSON.stringify(line)}\n` : `${formatLogLine(line)}\n`);
      const path = `/workers/${encodeURIComponent(id)}/logs`;
      if (!o.follow) {
        const data = await client().get<{ lines: Record<string, unknown>[] }>(`${path}?${query}`);
        for (const line of data.lines) print(line);
        return;
      }
      query.set('follow', 'true');
      const url = `${client().baseUrl.replace(/\/$/, '')}/api/v1${path}?${query}`;
      await streamLines(url, authHeaders(), (text) => {
        try {
          print(JSON.parse(text) as Record<string, unknown>);
        } catch {
          process.stdout.write(`${text}\n`);
        }
      });
      process.stderr.write(`the log stream of worker ${id} ended (it disconnected)\n`);
    });

  workers
    .command('revoke')
    .description('refuse every certificate the worker holds now on the agent channel; it must join again')
    .argument('<id>')
    .action(async (id: string) => {
      const { data } = await client().post<{ worker_id: string; revoked_before: string; message: string }>(
        `/workers/${encodeURIComponent(id)}/revoke`,
      );
      if (global().json) return printJson(data);
      process.stdout.write(`${data.message}\n`);
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
      const data = await client().get<{ distribution: (Record<string, unknown> & { vms: { name: string }[] })[] }>(
        '/cluster/distribution',
      );
      if (global().json) return printJson(data);
      printTable(
        ['WORKER', 'ZONE', 'STATUS', 'VMS', 'NAMES'],
        data.distribution.map((d) => [
          d.worker_id as string,
          d.zone as string,
          d.status as string,
          `${d.vm_count}/${d.max_vms}`,
          d.vms
            .map((v) => v.name)
            .join(', ')
            .slice(0, 60),
        ]),
      );
    });
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PLUMBING = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** `12:00:01.123 WARN  heartbeat failed  err="…" failures=2`: a pino line for a terminal. */
export function formatLogLine(line: Record<string, unknown>): string {
  const time = typeof line.time === 'number' ? new Date(line.time).toISOString().slice(11, 23) : '';
  const level = (LEVELS[Number(line.level)] ?? String(line.level ?? '')).padEnd(5);
  const fields = Object.entries(line)
    .filter(([key]) => !PLUMBING.has(key))
    .map(([key, value]) => `${key}=${typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value)}`)
    .join(' ');
  return `${time} ${level} ${String(line.msg ?? '')}${fields ? `  ${fields}` : ''}`;
}
