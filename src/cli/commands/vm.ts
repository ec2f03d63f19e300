/** `aetherium vm …`: create, list, get, exec, start, stop, delete, executions. */
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  bootWaterfall,
  type CreateProgress,
  type CreateVmSpec,
  type Execution,
  type VmData,
  type VmListFilter,
  type VmRecord,
} from '../../sdk/index.ts';
import { connect } from '../client.ts';
import { CliError } from '../errors.ts';
import { EXIT, exitCodeOf } from '../exit-codes.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { onInterrupt } from '../interrupt.ts';
import { type Column, collectPairs, labelsText, out, printJson, printList, printRecord, shortId } from '../output.ts';
import { Progress } from '../progress.ts';

export const int = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected a whole number');
  return n;
};
export const seconds = (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a number of seconds above 0');
  return n;
};
const pairs = (value: string, previous: Record<string, string>) => {
  try {
    return collectPairs(value, previous);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const VM_COLUMNS: Column<VmRecord>[] = [
  { header: 'ID', value: (v) => shortId(v.id) },
  { header: 'NAME', value: (v) => v.name },
  { header: 'STATUS', value: (v) => (v.deleted_at ? 'deleted' : v.status) },
  { header: 'WORKER', value: (v) => v.worker_id },
  { header: 'VCPUS', value: (v) => v.vcpus },
  { header: 'MEMORY', value: (v) => `${v.memory_mb} MiB` },
  { header: 'DISK', value: (v) => `${v.disk_gb} GiB`, wide: true },
  { header: 'DRIVER', value: (v) => v.driver, wide: true },
  { header: 'ZONE', value: (v) => v.zone, wide: true },
  { header: 'IMAGE', value: (v) => v.image, wide: true },
  { header: 'LABELS', value: (v) => labelsText(v.labels), wide: true },
  { header: 'CREATED', value: (v) => v.created_at, wide: true },
  { header: 'ERROR', value: (v) => v.error, wide: true },
];

const VM_FIELDS = [
  'id',
  'name',
  'status',
  'driver',
  'worker_id',
  'zone',
  'vcpus',
  'memory_mb',
  'disk_gb',
  'labels',
  'image',
  'error',
  'pending_reason',
  'created_at',
  'updated_at',
];

const EXECUTION_COLUMNS: Column<Execution>[] = [
  { header: 'ID', value: (e) => shortId(e.id) },
  { header: 'COMMAND', value: (e) => [e.command, ...e.args].join(' '), max: 60 },
  { header: 'EXIT', value: (e) => e.exit_code },
  { header: 'DURATION', value: (e) => `${e.duration_ms} ms` },
  { header: 'STARTED', value: (e) => e.started_at },
  { header: 'TASK', value: (e) => e.task_id, wide: true },
  { header: 'TIMED OUT', value: (e) => e.timed_out, wide: true },
];

const PHASE_RANK: Record<CreateProgress['phase'], number> = {
  queued: 0,
  pending: 0,
  placed: 1,
  booting: 2,
  running: 3,
};

/** What a create's phase says on the progress line. */
function phaseText(p: CreateProgress): string {
  switch (p.phase) {
    case 'queued':
      return 'queued for the scheduler';
    case 'pending':
      return `pending: ${p.reason}`;
    case 'placed':
      return `placed on ${p.workerId ?? 'a worker'}`;
    case 'booting':
      return `booting on ${p.workerId ?? 'its worker'}`;
    case 'running':
      return `ready on ${p.workerId ?? 'its worker'}${p.driver ? ` (driver ${p.driver})` : ''}`;
  }
}

export function registerVmCommands(program: Command, global: () => GlobalOptions): void {
  const vm = program.command('vm').description('create, inspect and use VMs');

  vm.command('create')
    .description('create a VM; waits until it runs (showing its progress on stderr) unless --no-wait')
    .option('--name <name>', 'VM name (lowercase letters, digits, "-")')
    .option('--vcpus <n>', 'virtual CPUs', int)
    .option('--memory <mb>', 'memory in MiB', int)
    .option('--disk <gb>', 'disk in GiB', int)
    .addOption(
      new Option('--driver <driver>', 'the driver to use').choices(['firecracker', 'qemu', 'sandbox', 'process']),
    )
    .option('--image <image>', 'guest image')
    .option('--zone <zone>', 'place only in this zone')
    .option('--label <k=v>', 'a label of the VM (repeatable)', pairs, {})
    .option('--worker-label <k=v>', 'a label the worker must have (repeatable)', pairs, {})
    .addOption(new Option('--strategy <strategy>', 'placement strategy').choices(['binpack', 'spread']))
    .option('--no-wait', 'return at once with the task id')
    .option('--timeout <seconds>', 'how long to wait until it runs', seconds, 300)
    .action(async (o) => {
      const g = global();
      const client = await connect(g);
      const spec: CreateVmSpec = {
        ...(o.name ? { name: o.name } : {}),
        ...(o.vcpus !== undefined ? { vcpus: o.vcpus } : {}),
        ...(o.memory !== undefined ? { memory_mb: o.memory } : {}),
        ...(o.disk !== undefined ? { disk_gb: o.disk } : {}),
        ...(o.driver ? { driver: o.driver } : {}),
        ...(o.image ? { image: o.image } : {}),
        ...(o.zone ? { zone: o.zone } : {}),
        ...(Object.keys(o.label).length ? { labels: o.label } : {}),
        ...(Object.keys(o.workerLabel).length ? { worker_labels: o.workerLabel } : {}),
        ...(o.strategy ? { strategy: o.strategy } : {}),
      };
      if (!o.wait) {
        const { data } = await client.request(
          'createVm',
          { body: spec, headers: { 'idempotency-key': `cli-${crypto.randomUUID()}` } },
          { idempotent: true },
        );
        if (outputFormat(g) === 'json') return printJson(data);
        return out(`VM ${data.vm.name} (${data.vm.id}) accepted; task ${data.task_id}\n`);
      }
      const progress = new Progress(o.name ? `VM ${o.name}: ` : 'VM: ', { enabled: !g.quiet });
      const interrupt = onInterrupt();
      let taskId: string | null = null;
      let lastPhase: CreateProgress['phase'] | null = null;
      let created: Awaited<ReturnType<typeof client.vms.create>>;
      try {
        created = await client.vms.create(spec, {
          waitUntil: 'running',
          timeoutMs: o.timeout * 1000,
          signal: interrupt.signal,
          onProgress: (p) => {
            taskId = p.taskId;
            // Phases only move forward on the display (a later poll may report an earlier one again).
            if (lastPhase !== null && PHASE_RANK[p.phase] < PHASE_RANK[lastPhase]) return;
            if (p.phase === lastPhase) progress.update(phaseText(p));
            else progress.phase(phaseText(p));
            lastPhase = p.phase;
          },
        });
        progress.succeed();
      } catch (err) {
        progress.fail();
        throw err;
      } finally {
        interrupt.dispose();
      }
      const data = created.data as VmData;
      if (outputFormat(g) === 'json') {
        // The answer `POST /vms?wait=true` gives: the VM, its create task as it ended, the pending reason.
        const { pending_reason, ...record } = data;
        const task = taskId ? await client.tasks.get(taskId) : undefined;
        return printJson({
          vm: record,
          task_id: taskId,
          ...(task ? { task } : {}),
          pending_reason: pending_reason ?? null,
        });
      }
      out(`VM ${data.name} (${data.id}) running on worker ${data.worker_id} with driver ${data.driver}\n`);
    });

  vm.command('list')
    .alias('ls')
    .description('list VMs')
    .option('--status <status>', 'only VMs in this status')
    .option('--worker <id>', 'only VMs on this worker')
    .option('--all', 'include deleted VMs')
    .option('--limit <n>', 'at most this many (default 100)', int)
    .action(async (o) => {
      const g = global();
      const client = await connect(g);
      const query = {
        ...(o.status ? { status: o.status } : {}),
        ...(o.worker ? { worker_id: o.worker } : {}),
        ...(o.all ? { include_deleted: 'true' } : {}),
        ...(o.limit ? { limit: o.limit } : {}),
      } as VmListFilter as never;
      const data = await client.call('listVms', { query });
      printList(g, data, (d) => d.vms, VM_COLUMNS);
    });

  vm.command('get')
    .description('show one VM (by id or name)')
    .argument('<vm>', 'VM id or name')
    .action(async (id: string) => {
      const g = global();
      const client = await connect(g);
      const data = await client.call('getVm', { params: { id } });
      printRecord(g, data, VM_FIELDS);
      if (outputFormat(g) !== 'json') out(renderWaterfall(data.phases ?? {}));
    });

  vm.command('exec')
    .description("run a command in a VM, streaming its output live; exits with the command's exit code")
    .argument('<vm>', 'VM id or name')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option('-e, --env <k=v>', 'an environment variable (repeatable)', pairs, {})
    .option('--cwd <dir>', 'working directory inside the VM')
    .option('--timeout <seconds>', 'kill the command after this many seconds (then exit 124)', seconds)
    .option('-i, --interactive', "send this terminal's input to the command (piped input always is)")
    .action(async (id: string, command: string[], o) => {
      const g = global();
      const [cmd, ...args] = command as [string, ...string[]];
      try {
        const client = await connect(g);
        const target = await client.vms.get(id);
        const options = {
          args,
          env: o.env as Record<string, string>,
          ...(o.cwd ? { cwd: o.cwd as string } : {}),
          ...(o.timeout ? { timeoutMs: o.timeout * 1000 } : {}),
        };
        // --json wants the whole result at once: the REST exec, its answer as the API gives it.
        if (outputFormat(g) === 'json') {
          const answer = await target.run(cmd, options);
          printJson(answer);
          if (!('exit_code' in answer)) return void (process.exitCode = EXIT.TIMEOUT);
          process.exitCode = answer.timed_out ? EXIT.COMMAND_TIMED_OUT : answer.exit_code;
          return;
        }
        const forward = Boolean(o.interactive) || !process.stdin.isTTY;
        const interrupt = onInterrupt();
        try {
          const result = await target.exec(cmd, {
            ...options,
            ...(forward ? { stdin: process.stdin } : {}),
            onStdout: (data) => process.stdout.write(data),
            onStderr: (data) => process.stderr.write(data),
            signal: interrupt.signal,
            collectOutput: false,
          });
          if (result.timedOut) {
            process.stderr.write(`aetherium: the command timed out after ${o.timeout} s and was killed\n`);
            process.exitCode = EXIT.COMMAND_TIMED_OUT;
          } else process.exitCode = result.exitCode ?? EXIT.ERROR;
        } finally {
          interrupt.dispose();
          if (forward) process.stdin.destroy();
        }
      } catch (err) {
        if ((err as { code?: string }).code === 'aborted') {
          // The SDK cancelled the command on its worker; let the close reach the server, then exit.
          setTimeout(() => process.exit(EXIT.INTERRUPTED), 1500).unref();
          throw new CliError('interrupted: the command was cancelled in the VM', EXIT.INTERRUPTED);
        }
        // Not the command's exit code: say so, so that a script can tell the two apart.
        const code = exitCodeOf(err);
        throw new CliError(`${(err as Error).message} (exit ${code} is aetherium's, not the command's)`, code);
      }
    });

  for (const action of ['start', 'stop'] as const) {
    vm.command(action)
      .description(`${action} a VM`)
      .argument('<vm>', 'VM id or name')
      .option('--no-wait', 'return at once with the task id')
      .option('--timeout <seconds>', 'how long to wait', seconds, 120)
      .action(async (id: string, o) => {
        const g = global();
        const client = await connect(g);
        const target = await client.vms.get(id);
        const result = await target[action]({ wait: o.wait, timeoutMs: o.timeout * 1000 });
        report(g, result, `${action === 'start' ? 'started' : 'stopped'} ${id}`);
      });
  }

  vm.command('delete')
    .alias('rm')
    .description('delete a VM and free its resources')
    .argument('<vm>', 'VM id or name')
    .option('--no-wait', 'return at once with the task id')
    .option('--timeout <seconds>', 'how long to wait', seconds, 120)
    .action(async (id: string, o) => {
      const g = global();
      const client = await connect(g);
      const target = await client.vms.get(id);
      report(g, await target.delete({ wait: o.wait, timeoutMs: o.timeout * 1000 }), `deleted ${id}`);
    });

  vm.command('executions')
    .description('commands run in a VM')
    .argument('<vm>', 'VM id or name')
    .action(async (id: string) => {
      const g = global();
      const client = await connect(g);
      printList(g, await client.call('listExecutions', { params: { id } }), (d) => d.executions, EXECUTION_COLUMNS);
    });
}

function report(g: GlobalOptions, data: { task_id: string; status: string; error: string | null }, done: string): void {
  if (outputFormat(g) === 'json') return printJson(data);
  out(data.status === 'completed' ? `${done} (task ${data.task_id})\n` : `task ${data.task_id} is ${data.status}\n`);
}

const BAR_WIDTH = 30;

/**
 * The boot waterfall under `vm get`: each phase, when it was reached, the time it took from the
 * one before, and a bar placed on the boot's timeline, so the slow step is the long bar.
 */
export function renderWaterfall(phases: Parameters<typeof bootWaterfall>[0]): string {
  const steps = bootWaterfall(phases);
  if (steps.length < 2) return ''; // accepted alone: nothing has happened yet to draw
  const total = steps[steps.length - 1]!.since_start_ms;
  const scale = (ms: number) => (total > 0 ? Math.round((ms / total) * BAR_WIDTH) : 0);
  const rows = steps.map((s) => {
    const start = scale(s.since_start_ms - s.step_ms);
    const width = s.step_ms > 0 ? Math.max(1, scale(s.since_start_ms) - start) : 0;
    return [
      s.phase,
      s.at.toISOString().slice(11, 23),
      s === steps[0] ? '' : `+${elapsed(s.step_ms)}`,
      `${' '.repeat(start)}${'█'.repeat(width)}`,
    ];
  });
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) =>
    `  ${r[0]!.padEnd(widths[0]!)}  ${r[1]!.padEnd(widths[1]!)}  ${r[2]!.padStart(widths[2]!)}  ${r[3]}`.trimEnd(),
  );
  return `\nboot (${elapsed(total)} from accepted to ${steps[steps.length - 1]!.phase}):\n${lines.join('\n')}\n`;
}

const elapsed = (ms: number) => (ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(2)} s`);
