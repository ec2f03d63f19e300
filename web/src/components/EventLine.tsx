/** One line of the events log: when, what, about whom, and the gist of its data. */
import type { ClusterEvent } from '@aetherium/sdk';
import { Link } from 'react-router';
import type { LogEntry } from '../api/live.tsx';
import { Badge } from './ui.tsx';

const TOPIC_TONE = { worker: 'blue', vm: 'green', task: 'gray' } as const;

export function gist(event: ClusterEvent): string {
  const d = event.data as Record<string, unknown>;
  switch (event.type) {
    case 'vm.state_changed':
      return `${d.name}: ${d.from} → ${d.to}${d.error ? ` (${d.error})` : ''}`;
    case 'worker.draining':
      return `deadline ${d.deadline ?? 'none'}${d.force ? ', forced' : ''}${d.message ? `: ${d.message}` : ''}`;
    case 'worker.resources':
      return `${d.vm_count} VMs, ${d.used_cpu_cores} cores, ${d.used_memory_mb} MiB reserved`;
    case 'worker.left':
      return String(d.reason);
    case 'task.failed':
    case 'task.retrying':
      return `${d.type} ${String(d.error)}`;
    case 'task.cancelled':
    case 'task.cancel_requested':
    case 'task.requeued':
      return `${d.type}: ${String(d.reason)}`;
    default:
      if (typeof d.type === 'string') return `${d.type}${d.name ? ` ${d.name}` : ''}`;
      return typeof d.name === 'string' ? d.name : '';
  }
}

function subject(event: ClusterEvent) {
  const d = event.data as Record<string, unknown>;
  if (typeof d.task_id === 'string')
    return (
      <Link className="link font-mono text-xs" to={`/tasks/${d.task_id}`}>
        {d.task_id}
      </Link>
    );
  if (typeof d.vm_id === 'string')
    return (
      <Link className="link font-mono text-xs" to={`/vms/${d.vm_id}`}>
        {String(d.name ?? d.vm_id)}
      </Link>
    );
  if (typeof d.worker_id === 'string')
    return (
      <Link className="link font-mono text-xs" to={`/workers/${encodeURIComponent(d.worker_id)}`}>
        {d.worker_id}
      </Link>
    );
  return null;
}

export function EventLine({ entry, compact = false }: { entry: LogEntry; compact?: boolean }) {
  if (entry.kind === 'note')
    return (
      <li className="flex gap-2 py-1 text-sm italic text-amber-800 dark:text-amber-200">
        <time className="shrink-0 font-mono text-xs" dateTime={entry.at}>
          {new Date(entry.at).toLocaleTimeString()}
        </time>
        {entry.text}
      </li>
    );
  const { event } = entry;
  const topic = event.type.slice(0, event.type.indexOf('.')) as keyof typeof TOPIC_TONE;
  return (
    <li className="flex flex-wrap items-baseline gap-x-2 gap-y-0.5 py-1 text-sm" data-event-id={event.id}>
      <time className="shrink-0 font-mono text-xs muted" dateTime={event.timestamp}>
        {new Date(event.timestamp).toLocaleTimeString()}
      </time>
      {compact ? null : <span className="font-mono text-xs muted">#{event.id}</span>}
      <Badge tone={TOPIC_TONE[topic] ?? 'gray'}>{event.type}</Badge>
      {subject(event)}
      <span className="min-w-0 truncate muted">{gist(event)}</span>
    </li>
  );
}
