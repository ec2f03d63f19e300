/** `aetherium events`: tail the cluster's events live. */
import type { Command } from 'commander';
import type { GlobalOptions } from '../global-options.ts';
import { openSocket, wsUrl } from '../ws-client.ts';

export function registerEventCommands(program: Command, global: () => GlobalOptions): void {
  program
    .command('events')
    .description('follow cluster events live (worker, vm, task); reconnects and resumes by itself')
    .option('--topic <topics>', 'comma-separated: worker,vm,task')
    .option('--worker <id>', 'only events about this worker')
    .option('--vm <id>', 'only events about this VM (id)')
    .option('--since <id>', 'start after this event id (replays what is still retained)')
    .action(async (o) => {
      let since: number | undefined = o.since !== undefined ? Number(o.since) : undefined;
      for (;;) {
        const params = new URLSearchParams();
        if (o.topic) params.set('topics', o.topic);
        if (o.worker) params.set('worker_id', o.worker);
        if (o.vm) params.set('vm_id', o.vm);
        if (since !== undefined) params.set('since', String(since));
        const ws = await openSocket(wsUrl(global().api, `/events?${params}`), (message) => {
          if (typeof message.id === 'number' && message.id > 0) since = message.id;
          if (global().json) return void process.stdout.write(`${JSON.stringify(message)}\n`);
          if (message.type === 'gap') return void process.stderr.write(`aetherium: ${message.message}\n`);
          const { id, type, timestamp, data } = message;
          const about = [
            data?.worker_id && `worker=${data.worker_id}`,
            data?.name && `vm=${data.name}`,
            data?.task_id && `task=${String(data.task_id).slice(0, 8)}`,
            data?.to && `→ ${data.to}`,
            data?.status && `status=${data.status}`,
            data?.reason && `(${data.reason})`,
          ]
            .filter(Boolean)
            .join(' ');
          process.stdout.write(`${String(id).padStart(6)}  ${timestamp}  ${String(type).padEnd(20)} ${about}\n`);
        });
        const code = await new Promise<number>((resolve) => ws.on('close', (c) => resolve(c)));
        process.stderr.write(`aetherium: event stream closed (${code}); reconnecting after event ${since ?? 'none'}\n`);
        await new Promise((r) => setTimeout(r, 1000));
      }
    });
}
