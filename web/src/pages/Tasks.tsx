/**
 * The task queue: counts by status, when tasks were made (by minute), and the tasks themselves,
 * filtered by status, type, worker and VM (in the URL). Pending ones say why they wait.
 */
import { TASK_STATUSES, TASK_TYPES, type Task, type TaskListFilter } from '@aetherium/sdk';
import { useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useTasks } from '../api/queries.ts';
import { ChartCanvas } from '../components/ChartCanvas.tsx';
import { ago } from '../components/format.ts';
import { pendingReason } from '../components/pending.ts';
import { Card, ErrorNote, PageTitle, Spinner, StatusBadge } from '../components/ui.tsx';
import { VirtualTable } from '../components/VirtualRows.tsx';

const COLORS: Record<string, string> = {
  pending: '#f59e0b',
  scheduled: '#0ea5e9',
  running: '#6366f1',
  completed: '#10b981',
  failed: '#dc2626',
  cancelled: '#64748b',
};

function Timeline({ tasks }: { tasks: readonly Task[] }) {
  const config = useMemo(() => {
    const minutes = new Map<number, Map<string, number>>();
    for (const t of tasks) {
      const m = Math.floor(new Date(t.created_at).getTime() / 60_000);
      const by = minutes.get(m) ?? new Map<string, number>();
      by.set(t.status, (by.get(t.status) ?? 0) + 1);
      minutes.set(m, by);
    }
    const keys = [...minutes.keys()].sort((a, b) => a - b).slice(-60);
    return {
      type: 'bar' as const,
      data: {
        labels: keys.map((m) => new Date(m * 60_000).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })),
        datasets: TASK_STATUSES.map((s) => ({
          label: s,
          data: keys.map((m) => minutes.get(m)?.get(s) ?? 0),
          backgroundColor: COLORS[s],
        })),
      },
      options: { scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true } } },
    };
  }, [tasks]);
  return (
    <ChartCanvas
      config={config}
      height={180}
      summary={`Tasks created per minute, by status, over the ${tasks.length} tasks shown.`}
    />
  );
}

export default function Tasks() {
  const [params, setParams] = useSearchParams();
  const filter: TaskListFilter = {};
  for (const key of ['status', 'type', 'worker_id', 'vm_id'] as const) {
    const value = params.get(key);
    if (value) (filter as Record<string, string>)[key] = value;
  }
  const tasks = useTasks(filter);
  const list = tasks.data?.tasks ?? [];
  const counts = useMemo(() => {
    const c = new Map<string, number>();
    for (const t of list) c.set(t.status, (c.get(t.status) ?? 0) + 1);
    return c;
  }, [list]);
  const set = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };

  return (
    <>
      <PageTitle title="Task queue" />
      <div className="mb-4 grid grid-cols-3 gap-2 md:grid-cols-6">
        {TASK_STATUSES.map((s) => (
          <button
            key={s}
            type="button"
            aria-pressed={filter.status === s}
            onClick={() => set('status', filter.status === s ? '' : s)}
            className={`card p-2 text-left ${filter.status === s ? 'ring-2 ring-indigo-600' : ''}`}
          >
            <div className="label">{s}</div>
            <div className="text-xl font-semibold tabular-nums" data-testid={`tasks-${s}`}>
              {counts.get(s) ?? 0}
            </div>
          </button>
        ))}
      </div>
      <Card title="When they were made" className="mb-4">
        <Timeline tasks={list} />
      </Card>
      <search className="mb-3 flex flex-wrap items-end gap-2">
        <label className="flex flex-col gap-1">
          <span className="label">Status</span>
          <select className="input" value={filter.status ?? ''} onChange={(e) => set('status', e.target.value)}>
            <option value="">Any status</option>
            {TASK_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className="label">Type</span>
          <select className="input" value={filter.type ?? ''} onChange={(e) => set('type', e.target.value)}>
            <option value="">Any type</option>
            {TASK_TYPES.map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label className="flex flex-col gap-1">
          <span className="label">Worker</span>
          <input className="input" value={filter.worker_id ?? ''} onChange={(e) => set('worker_id', e.target.value)} />
        </label>
        <label className="flex flex-col gap-1">
          <span className="label">VM id</span>
          <input className="input" value={filter.vm_id ?? ''} onChange={(e) => set('vm_id', e.target.value)} />
        </label>
        <span className="text-sm muted">
          {tasks.data ? `${list.length} of ${tasks.data.total} tasks (newest first)` : ''}
        </span>
      </search>
      {tasks.isPending ? <Spinner label="Loading tasks" /> : null}
      {tasks.isError ? <ErrorNote error={tasks.error} /> : null}
      {tasks.data ? (
        <VirtualTable
          label="Tasks"
          rows={list}
          rowKey={(t) => t.id}
          header={
            <tr>
              <th scope="col">Task</th>
              <th scope="col">Type</th>
              <th scope="col">Status</th>
              <th scope="col">VM</th>
              <th scope="col">Worker</th>
              <th scope="col">Created</th>
              <th scope="col">Note</th>
            </tr>
          }
          row={(t) => (
            <tr key={t.id} data-testid={`task-row-${t.id}`} className="h-[41px]">
              <td>
                <Link to={`/tasks/${t.id}`} className="link font-mono text-xs">
                  {t.id}
                </Link>
              </td>
              <td className="text-xs">{t.type}</td>
              <td>
                <StatusBadge status={t.status} />
              </td>
              <td className="max-w-40 truncate font-mono text-xs">{t.vm_id ?? '—'}</td>
              <td className="max-w-40 truncate font-mono text-xs">{t.worker_id ?? '—'}</td>
              <td className="whitespace-nowrap text-xs">{ago(t.created_at)}</td>
              <td className="max-w-72 truncate text-xs">
                {t.status === 'pending' || t.status === 'scheduled' ? pendingReason(t) : (t.error ?? '')}
              </td>
            </tr>
          )}
        />
      ) : null}
    </>
  );
}
