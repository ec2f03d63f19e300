/** `aetherium tasks …`. */
import type { Command } from 'commander';
import type { ApiClient } from '../api-client.ts';
import { printFields, printJson, printTable, shortId } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';

type Task = Record<string, unknown> & { id: string };

export function registerTaskCommands(program: Command, client: () => ApiClient, global: () => GlobalOptions): void {
  const tasks = program.command('tasks').description('inspect tasks');
  tasks
    .command('list')
    .alias('ls')
    .description('list tasks, newest first')
    .option('--status <status>', 'pending | scheduled | running | completed | failed | cancelled')
    .option('--type <type>', 'vm:create | vm:start | vm:stop | vm:delete | vm:execute')
    .option('--worker <id>', 'only tasks of this worker')
    .option('--vm <id>', 'only tasks of this VM (id)')
    .action(async (o) => {
      const params = new URLSearchParams();
      if (o.status) params.set('status', o.status);
      if (o.type) params.set('type', o.type);
      if (o.worker) params.set('worker_id', o.worker);
      if (o.vm) params.set('vm_id', o.vm);
      const data = await client().get<{ tasks: Task[] }>(`/tasks${params.size ? `?${params}` : ''}`);
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'TYPE', 'STATUS', 'VM', 'WORKER', 'RETRIES', 'ERROR'],
        data.tasks.map((t) => [
          shortId(t.id),
          t.type as string,
          t.status as string,
          shortId(t.vm_id as string),
          t.worker_id as string,
          `${t.retry_count}/${t.max_retries}`,
          ((t.error as string) ?? '').slice(0, 50),
        ]),
      );
    });
  tasks
    .command('cancel')
    .description('cancel a task: a waiting one never runs, a running one is aborted')
    .argument('<id>')
    .option('--no-wait', 'return once the cancel is requested')
    .action(async (id: string, o) => {
      const { data } = await client().post<{ task_id: string; status: string; outcome: string; error?: string }>(
        `/tasks/${encodeURIComponent(id)}/cancel${o.wait ? '?wait=true' : ''}`,
      );
      if (global().json) return printJson(data);
      const text =
        data.outcome === 'already'
          ? 'was already cancelled'
          : data.status === 'cancelled'
            ? 'cancelled'
            : `is ${data.status}: cancel requested`;
      process.stdout.write(`task ${data.task_id} ${text}\n`);
    });

  tasks
    .command('get')
    .description('show a task with its result and placement explanation')
    .argument('<id>')
    .action(async (id: string) => {
      const data = await client().get<Task>(`/tasks/${encodeURIComponent(id)}`);
      if (global().json) return printJson(data);
      printFields(data);
    });
}
