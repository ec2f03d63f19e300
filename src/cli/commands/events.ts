/** `aetherium events`: follow the cluster's events live, over the SDK's lasting subscription. */
import type { Command } from 'commander';
import type { ClusterEvent, EventFilter, Topic } from '../../sdk/index.ts';
import { connect } from '../client.ts';
import { usageError } from '../errors.ts';
import { EXIT } from '../exit-codes.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { onInterrupt } from '../interrupt.ts';
import { formatTime, out, printJsonLine } from '../output.ts';

const TOPICS = ['worker', 'vm', 'task'];

/** One event for a terminal: `  1042  2026-…Z  vm.status_changed     worker=w1 vm=demo → running`. */
export function formatEvent(event: ClusterEvent, wide: boolean): string {
  const data = (event.data ?? {}) as Record<string, unknown>;
  const about = [
    data.worker_id && `worker=${data.worker_id}`,
    data.name && `vm=${data.name}`,
    data.task_id && `task=${String(data.task_id).slice(0, 8)}`,
    data.to && `→ ${data.to}`,
    data.status && `status=${data.status}`,
    data.reason && `(${data.reason})`,
  ]
    .filter(Boolean)
    .join(' ');
  const line = `${String(event.id).padStart(6)}  ${formatTime(event.timestamp)}  ${String(event.type).padEnd(22)} ${about}`;
  return wide ? `${line}  ${JSON.stringify(data)}` : line;
}

export function registerEventCommands(program: Command, global: () => GlobalOptions): void {
  program
    .command('events')
    .description('follow cluster events live (worker, vm, task); reconnects and resumes by itself')
    .option('--topic <topics>', 'comma-separated: worker,vm,task')
    .option('--worker <id>', 'only events about this worker')
    .option('--vm <id>', 'only events about this VM (id)')
    .option('--since <id>', 'start after this event id (replays what is still retained)')
    .action(async (o) => {
      const g = global();
      const filter: EventFilter = {};
      if (o.topic) {
        const topics = String(o.topic)
          .split(',')
          .map((t) => t.trim())
          .filter(Boolean);
        const bad = topics.filter((t) => !TOPICS.includes(t));
        if (bad.length) throw usageError(`--topic ${bad.join(',')}: the topics are ${TOPICS.join(', ')}`);
        filter.topics = topics as Topic[];
      }
      if (o.worker) filter.workerId = o.worker;
      if (o.vm) filter.vmId = o.vm;
      if (o.since !== undefined) {
        const since = Number(o.since);
        if (!Number.isInteger(since) || since < 0) throw usageError('--since takes an event id (a whole number)');
        filter.since = since;
      }
      const format = outputFormat(g);
      const client = await connect(g);
      const interrupt = onInterrupt();
      let fatal: unknown = null;
      let opened = false;
      const subscription = client.events.subscribe(
        filter,
        (event) => (format === 'json' ? printJsonLine(event) : out(`${formatEvent(event, format === 'wide')}\n`)),
        {
          signal: interrupt.signal,
          onGap: (gap) => {
            if (format === 'json') printJsonLine(gap);
            else process.stderr.write(`aetherium: ${gap.message}\n`);
          },
          onOpen: () => {
            opened = true;
          },
          onError: (error, { willRetry }) => {
            // A stream that never opened (no server there, refused credentials) is an error now,
            // not something to retry forever; once it ran, a lost connection is resumed.
            if (!willRetry || !opened) {
              fatal = error;
              subscription.close();
            } else if (!g.quiet) process.stderr.write(`aetherium: ${error.message}\n`);
          },
        },
      );
      await subscription.closed;
      interrupt.dispose();
      if (fatal) throw fatal;
      if (interrupt.signal.aborted) process.exitCode = EXIT.INTERRUPTED;
    });
}
