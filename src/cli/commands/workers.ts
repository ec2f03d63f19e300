/** `aetherium workers …` and `aetherium cluster …`. */
import type { Command } from 'commander';
import { parseDuration } from '../../config/duration.ts';
import type { ClusterDistribution, DrainOptions, Worker, WorkerLogLine, WorkerLogsQuery } from '../../sdk/index.ts';
import { connect } from '../client.ts';
import { CliError, usageError } from '../errors.ts';
import { EXIT } from '../exit-codes.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { onInterrupt, sleep } from '../interrupt.ts';
import {
  type Column,
  formatTime,
  labelsText,
  out,
  printJson,
  printJsonLine,
  printList,
  printRecord,
} from '../output.ts';
import { Progress, renderBar } from '../progress.ts';

const WORKER_COLUMNS: Column<Worker>[] = [
  { header: 'ID', value: (w) => w.id },
  { header: 'ZONE', value: (w) => w.zone },
  { header: 'STATUS', value: (w) => (w.status === 'active' && !w.eligible ? 'ineligible' : w.status) },
  { header: 'HEALTHY', value: (w) => w.is_healthy },
  { header: 'VMS', value: (w) => `${w.vm_count}/${w.max_vms}` },
  { header: 'CPU %', value: (w) => w.cpu_usage_percent },
  { header: 'MEM %', value: (w) => w.memory_usage_percent },
  { header: 'ADDRESS', value: (w) => w.address, wide: true },
  { header: 'LABELS', value: (w) => labelsText(w.labels), wide: true },
  { header: 'UPTIME', value: (w) => w.uptime, wide: true },
  { header: 'CAPABILITIES', value: (w) => w.capabilities.join(','), wide: true },
  { header: 'CPUS', value: (w) => `${w.used_cpu_cores}/${w.cpu_cores}`, wide: true },
  { header: 'MEMORY MB', value: (w) => `${w.used_memory_mb}/${w.memory_mb}`, wide: true },
  { header: 'LAST SEEN', value: (w) => w.last_seen, wide: true },
];

type Placement = ClusterDistribution['distribution'][number];

const DISTRIBUTION_COLUMNS: Column<Placement>[] = [
  { header: 'WORKER', value: (d) => d.worker_id },
  { header: 'ZONE', value: (d) => d.zone },
  { header: 'STATUS', value: (d) => d.status },
  { header: 'VMS', value: (d) => `${d.vm_count}/${d.max_vms}` },
  { header: 'NAMES', value: (d) => d.vms.map((v) => v.name).join(', '), max: 60 },
];

export function registerWorkerCommands(program: Command, global: () => GlobalOptions): void {
  const workers = program.command('workers').alias('worker-ls').description('inspect and control workers');

  workers
    .command('list')
    .alias('ls')
    .description('list workers')
    .option('--zone <zone>', 'only this zone')
    .option('--status <status>', 'active | draining | offline')
    .option('--capability <driver>', 'only workers that run this driver')
    .action(async (o) => {
      const g = global();
      const client = await connect(g);
      const query = {
        ...(o.zone ? { zone: o.zone } : {}),
        ...(o.status ? { status: o.status } : {}),
        ...(o.capability ? { capability: o.capability } : {}),
      } as never;
      printList(g, await client.call('listWorkers', { query }), (d) => d.workers, WORKER_COLUMNS);
    });

  workers
    .command('get')
    .description('show one worker')
    .argument('<id>')
    .action(async (id: string) => {
      const g = global();
      const client = await connect(g);
      printRecord(g, await client.workers.get(id));
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
      const g = global();
      const body: DrainOptions = {};
      if (typeof o.deadline === 'string') {
        const ms = parseDuration(o.deadline);
        if (ms === null) throw usageError(`--deadline ${o.deadline}: expected a duration such as 90s, 5m or 1h`);
        body.deadline_seconds = Math.ceil(ms / 1000);
      }
      if (o.force) body.force = true;
      if (o.deadline === false) body.no_deadline = true;
      if (o.message) body.message = o.message;
      const client = await connect(g);
      const answer = await client.workers.drain(id, body);
      const json = outputFormat(g) === 'json';
      if (json && !o.wait) return printJson(answer);
      const deadline = answer.worker.drain?.deadline;
      if (!json)
        out(
          `worker ${id} is draining${deadline ? ` (deadline ${formatTime(deadline)})` : ' (no deadline)'}: no new VMs will be placed on it\n`,
        );
      if (!o.wait) return;
      const final = await waitDrained(g, client, id, answer.worker.vm_count);
      if (json) printJson(final);
      else out(`worker ${id} is drained: no VM left (${formatTime(final.drain?.drained_at)})\n`);
    });

  workers
    .command('eligibility')
    .description('turn new placements on a worker on or off, without draining it')
    .argument('<id>')
    .argument('<on|off>')
    .action(async (id: string, value: string) => {
      if (value !== 'on' && value !== 'off') throw usageError('eligibility is "on" or "off"');
      const g = global();
      const client = await connect(g);
      const data = await client.workers.setEligibility(id, value === 'on');
      if (outputFormat(g) === 'json') return printJson(data);
      out(`worker ${id} ${data.worker.eligible ? 'takes' : 'takes no'} new VMs\n`);
    });

  workers
    .command('activate')
    .description('let a drained worker take VMs again')
    .argument('<id>')
    .action(async (id: string) => {
      const g = global();
      const client = await connect(g);
      const data = await client.workers.activate(id);
      if (outputFormat(g) === 'json') return printJson(data);
      out(`worker ${id} is ${data.status}\n`);
    });

  workers
    .command('logs')
    .description("a worker's recent log lines, from the buffer it keeps (-f: follow them live)")
    .argument('<id>')
    .option('-f, --follow', 'keep printing new lines until interrupted', false)
    .option('--since <when>', 'only lines since then: a duration back from now (10m) or an RFC 3339 time')
    .option('-n, --limit <n>', 'at most this many past lines', '200')
    .action(async (id: string, o: { follow: boolean; since?: string; limit: string }) => {
      const g = global();
      const client = await connect(g);
      const query: WorkerLogsQuery = { limit: Number(o.limit), ...(o.since ? { since: o.since } : {}) };
      // Log lines are a stream even when not followed: one per line, JSON or for a terminal.
      const print = (line: WorkerLogLine) =>
        outputFormat(g) === 'json' ? printJsonLine(line) : out(`${formatLogLine(line)}\n`);
      if (!o.follow) {
        for (const line of (await client.workers.logs(id, query)).lines) print(line);
        return;
      }
      const interrupt = onInterrupt();
      try {
        await client.workers.followLogs(id, query, { onLine: print, signal: interrupt.signal }).done;
      } finally {
        interrupt.dispose();
      }
      if (interrupt.signal.aborted) return void (process.exitCode = EXIT.INTERRUPTED);
      process.stderr.write(`the log stream of worker ${id} ended (it disconnected)\n`);
    });

  workers
    .command('revoke')
    .description('refuse every certificate the worker holds now on the agent channel; it must join again')
    .argument('<id>')
    .action(async (id: string) => {
      const g = global();
      const client = await connect(g);
      const data = await client.workers.revoke(id);
      if (outputFormat(g) === 'json') return printJson(data);
      out(`${data.message}\n`);
    });

  const cluster = program.command('cluster').description('cluster-wide views');
  cluster
    .command('stats')
    .description('totals, usage and free capacity')
    .action(async () => {
      const g = global();
      const client = await connect(g);
      printRecord(g, await client.cluster.stats());
    });
  cluster
    .command('distribution')
    .description('which VMs run where')
    .action(async () => {
      const g = global();
      const client = await connect(g);
      printList(g, await client.cluster.distribution(), (d) => d.distribution, DISTRIBUTION_COLUMNS);
    });
}

/**
 * Follows a drain until the worker holds no VM: a bar of the VMs left on stderr, redrawn on a
 * terminal, a line per change elsewhere. Ctrl-C stops watching (the drain goes on).
 */
async function waitDrained(
  g: GlobalOptions,
  client: Awaited<ReturnType<typeof connect>>,
  id: string,
  atStart: number,
): Promise<Worker> {
  const progress = new Progress(`worker ${id}: `, { enabled: !g.quiet });
  const interrupt = onInterrupt();
  let total = Math.max(1, atStart);
  try {
    for (;;) {
      const worker = await client.workers.get(id, { signal: interrupt.signal });
      if (!worker.drain) {
        progress.fail();
        throw new CliError(`worker ${id} was activated again: the drain was abandoned`, EXIT.CONFLICT);
      }
      if (worker.drain.drained_at) {
        progress.update(`${renderBar(total, total)} 0/${total} VMs left`);
        progress.succeed();
        return worker;
      }
      total = Math.max(total, worker.vm_count);
      progress.update(`${renderBar(total - worker.vm_count, total)} ${worker.vm_count}/${total} VMs left`);
      await sleep(1000, interrupt.signal);
      if (interrupt.signal.aborted) {
        progress.stop();
        throw new CliError(
          `stopped watching: worker ${id} is still draining (${worker.vm_count} VMs left)`,
          EXIT.INTERRUPTED,
        );
      }
    }
  } catch (err) {
    progress.stop();
    if ((err as { code?: string }).code === 'aborted')
      throw new CliError(`stopped watching: worker ${id} is still draining`, EXIT.INTERRUPTED);
    throw err;
  } finally {
    interrupt.dispose();
  }
}

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const PLUMBING = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** `12:00:01.123 WARN  heartbeat failed  err="…" failures=2`: a pino line for a terminal. */
export function formatLogLine(line: Record<string, unknown>): string {
  const time = typeof line.time === 'number' ? new Date(line.time).toISOString().slice(11, 23) : '';
  const level = (LEVELS[Number(line.level)] ?? String(line.level ?? '')).padEnd(5);
  const fields = Object.entries(line)
    .filter(([key]) => !PLUMBING.has(key))
    .map(([key, value]) => `${key}=${JSON.stringify(value)}`)
    .join(' ');
  return `${time} ${level} ${String(line.msg ?? '')}${fields ? `  ${fields}` : ''}`;
}
