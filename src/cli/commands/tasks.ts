/** `aetherium tasks …`. */
import type { Command } from 'commander';
import type { Task } from '../../sdk/index.ts';
import { connect } from '../client.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { type Column, out, printJson, printList, printRecord, shortId } from '../output.ts';
import { int } from './vm.ts';

const TASK_COLUMNS: Column<Task>[] = [
  { header: 'ID', value: (t) => shortId(t.id) },
  { header: 'TYPE', value: (t) => t.type },
  { header: 'STATUS', value: (t) => t.status },
  { header: 'VM', value: (t) => shortId(t.vm_id) },
  { header: 'WORKER', value: (t) => t.worker_id },
  { header: 'ERROR', value: (t) => t.error, max: 50 },
  { header: 'RETRIES', value: (t) => `${t.retry_count}/${t.max_retries}`, wide: true },
  { header: 'CREATED', value: (t) => t.created_at, wide: true },
  { header: 'STARTED', value: (t) => t.started_at, wide: true },
  { header: 'COMPLETED', value: (t) => t.completed_at, wide: true },
];

export function registerTaskCommands(program: Command, global: () => GlobalOptions): void {
  const tasks = program.command('tasks').description('inspect and cancel tasks');
  tasks
    .command('list')
    .alias('ls')
    .description('list tasks, newest first')
    .option('--status <status>', 'pending | scheduled | running | completed | failed | cancelled')
    .option('--type <type>', 'vm:create | vm:start | vm:stop | vm:delete | vm:execute')
    .option('--worker <id>', 'only tasks of this worker')
    .option('--vm <id>', 'only tasks of this VM (id)')
    .option('--limit <n>', 'at most this many (default 100)', int)
    .action(async (o) => {
      const g = global();
      const client = await connect(g);
      const query = {
        ...(o.status ? { status: o.status } : {}),
        ...(o.type ? { type: o.type } : {}),
        ...(o.worker ? { worker_id: o.worker } : {}),
        ...(o.vm ? { vm_id: o.vm } : {}),
        ...(o.limit ? { limit: o.limit } : {}),
      } as never;
      printList(g, await client.call('listTasks', { query }), (d) => d.tasks, TASK_COLUMNS);
    });

  tasks
    .command('cancel')
    .description('cancel a task: a waiting one never runs, a running one is aborted')
    .argument('<id>')
    .option('--no-wait', 'return once the cancel is requested')
    .action(async (id: string, o) => {
      const g = global();
      const client = await connect(g);
      const data = await client.tasks.cancel(id, { wait: o.wait });
      if (outputFormat(g) === 'json') return printJson(data);
      const text =
        data.outcome === 'already'
          ? 'was already cancelled'
          : data.status === 'cancelled'
            ? 'cancelled'
            : `is ${data.status}: cancel requested`;
      out(`task ${data.task_id} ${text}\n`);
    });

  tasks
    .command('get')
    .description('show a task with its result and placement explanation')
    .argument('<id>')
    .action(async (id: string) => {
      const g = global();
      const client = await connect(g);
      printRecord(g, await client.tasks.get(id));
    });
}
