/** `aetherium vm …`: create, list, get, exec, start, stop, delete, executions. */
import { type Command, InvalidArgumentError } from 'commander';
import { type ApiClient, CliError } from '../api-client.ts';
import { collectPairs, printFields, printJson, printTable, shortId } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';
import { streamExec } from '../stream-exec.ts';

type Vm = Record<string, unknown> & {
  id: string;
  name: string;
  status: string;
  worker_id: string | null;
  error: string | null;
};
type TaskAnswer = { task_id: string; status: string; error: string | null };

const int = (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('expected a whole number');
  return n;
};
const pairs = (value: string, previous: Record<string, string>) => {
  try {
    return collectPairs(value, previous);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export function registerVmCommands(program: Command, client: () => ApiClient, global: () => GlobalOptions): void {
  const vm = program.command('vm').description('create, inspect and use VMs');

  vm.command('create')
    .description('create a VM; waits until it runs unless --no-wait')
    .option('--name <name>', 'VM name (lowercase letters, digits, "-")')
    .option('--vcpus <n>', 'virtual CPUs', int)
    .option('--memory <mb>', 'memory in MiB', int)
    .option('--disk <gb>', 'disk in GiB', int)
    .option('--driver <driver>', 'firecracker | qemu | sandbox | process')
    .option('--image <image>', 'guest image')
    .option('--zone <zone>', 'place only in this zone')
    .option('--label <k=v>', 'a label of the VM (repeatable)', pairs, {})
    .option('--worker-label <k=v>', 'a label the worker must have (repeatable)', pairs, {})
    .option('--strategy <strategy>', 'binpack | spread')
    .option('--no-wait', 'return at once with the task id')
    .option('--timeout <seconds>', 'how long to wait', int, 300)
    .action(async (o) => {
      const body = {
        ...(o.name ? { name: o.name } : {}),
        ...(o.vcpus ? { vcpus: o.vcpus } : {}),
        ...(o.memory ? { memory_mb: o.memory } : {}),
        ...(o.disk !== undefined ? { disk_gb: o.disk } : {}),
        ...(o.driver ? { driver: o.driver } : {}),
        ...(o.image ? { image: o.image } : {}),
        ...(o.zone ? { zone: o.zone } : {}),
        ...(Object.keys(o.label).length ? { labels: o.label } : {}),
        ...(Object.keys(o.workerLabel).length ? { worker_labels: o.workerLabel } : {}),
        ...(o.strategy ? { strategy: o.strategy } : {}),
      };
      const query = o.wait ? `?wait=true&timeout=${o.timeout}` : '';
      const { data } = await client().post<{
        vm: Vm;
        task_id: string;
        task?: TaskAnswer;
        pending_reason?: string | null;
      }>(`/vms${query}`, body);
      if (global().json) return printJson(data);
      const v = data.vm;
      if (v.status === 'failed')
        throw new CliError(`VM ${v.name} failed: ${v.error ?? data.task?.error ?? 'unknown error'}`);
      if (o.wait && v.status !== 'running') {
        process.stdout.write(
          `VM ${v.name} (${v.id}) is ${v.status}${data.pending_reason ? `: ${data.pending_reason}` : ''}; task ${data.task_id}\n`,
        );
        return;
      }
      process.stdout.write(
        `VM ${v.name} (${v.id}) ${o.wait ? `running on worker ${v.worker_id} with driver ${v.driver}` : `accepted; task ${data.task_id}`}\n`,
      );
    });

  vm.command('list')
    .alias('ls')
    .description('list VMs')
    .option('--status <status>', 'only VMs in this status')
    .option('--worker <id>', 'only VMs on this worker')
    .option('--all', 'include deleted VMs')
    .action(async (o) => {
      const params = new URLSearchParams();
      if (o.status) params.set('status', o.status);
      if (o.worker) params.set('worker_id', o.worker);
      if (o.all) params.set('include_deleted', 'true');
      const data = await client().get<{ vms: Vm[]; total: number }>(`/vms${params.size ? `?${params}` : ''}`);
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'NAME', 'STATUS', 'DRIVER', 'WORKER', 'VCPUS', 'MEMORY MB', 'CREATED'],
        data.vms.map((v) => [
          shortId(v.id),
          v.name,
          v.deleted_at ? 'deleted' : v.status,
          v.driver as string,
          v.worker_id,
          v.vcpus as number,
          v.memory_mb as number,
          v.created_at as string,
        ]),
      );
    });

  vm.command('get')
    .description('show one VM (by id or name)')
    .argument('<vm>', 'VM id or name')
    .action(async (id: string) => {
      const data = await client().get<Vm>(`/vms/${encodeURIComponent(id)}`);
      if (global().json) return printJson(data);
      printFields(data, [
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
      ]);
    });

  vm.command('exec')
    .description("run a command in a VM, streaming its output live; exits with the command's exit code")
    .argument('<vm>', 'VM id or name')
    .argument('<command...>', 'the command and its arguments (put them after --)')
    .option('-e, --env <k=v>', 'an environment variable (repeatable)', pairs, {})
    .option('--cwd <dir>', 'working directory inside the VM')
    .option('--timeout <seconds>', 'kill the command after this many seconds', Number)
    .option('-i, --interactive', "send this terminal's input to the command (piped input always is)")
    .action(async (id: string, command: string[], o) => {
      const [cmd, ...args] = command;
      const body = {
        command: cmd,
        args,
        env: o.env,
        ...(o.cwd ? { cwd: o.cwd } : {}),
        ...(o.timeout ? { timeout: o.timeout } : {}),
      };
      // --json wants the whole result at once: the plain request/response API.
      if (global().json) {
        const { status, data } = await client().post<{ exit_code?: number }>(
          `/vms/${encodeURIComponent(id)}/exec`,
          body,
        );
        printJson(data);
        process.exitCode = status === 202 ? 1 : (data.exit_code ?? 1);
        return;
      }
      process.exitCode = await streamExec(
        global().api,
        id,
        body,
        Boolean(o.interactive) || !process.stdin.isTTY,
        o.timeout,
      );
    });

  for (const action of ['start', 'stop'] as const) {
    vm.command(action)
      .description(`${action} a VM`)
      .argument('<vm>', 'VM id or name')
      .option('--no-wait', 'return at once with the task id')
      .action(async (id: string, o) => {
        const { data } = await client().post<TaskAnswer>(
          `/vms/${encodeURIComponent(id)}/${action}${o.wait ? '?wait=true' : ''}`,
        );
        report(data, `${action === 'start' ? 'started' : 'stopped'} ${id}`, global().json);
      });
  }

  vm.command('delete')
    .alias('rm')
    .description('delete a VM and free its resources')
    .argument('<vm>', 'VM id or name')
    .option('--no-wait', 'return at once with the task id')
    .action(async (id: string, o) => {
      const { data } = await client().delete<TaskAnswer>(`/vms/${encodeURIComponent(id)}${o.wait ? '?wait=true' : ''}`);
      report(data, `deleted ${id}`, global().json);
    });

  vm.command('executions')
    .description('commands run in a VM')
    .argument('<vm>', 'VM id or name')
    .action(async (id: string) => {
      const data = await client().get<{ executions: Record<string, unknown>[] }>(
        `/vms/${encodeURIComponent(id)}/executions`,
      );
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'COMMAND', 'EXIT', 'DURATION MS', 'STARTED'],
        data.executions.map((e) => [
          shortId(e.id as string),
          [e.command, ...(e.args as string[])].join(' ').slice(0, 60),
          e.exit_code as number,
          e.duration_ms as number,
          e.started_at as string,
        ]),
      );
    });
}

function report(data: TaskAnswer, done: string, json: boolean): void {
  if (json) return printJson(data);
  if (data.status === 'failed') throw new CliError(`task ${data.task_id} failed: ${data.error}`);
  process.stdout.write(
    data.status === 'completed' ? `${done} (task ${data.task_id})\n` : `task ${data.task_id} is ${data.status}\n`,
  );
}
