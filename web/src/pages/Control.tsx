/**
 * Control many at once: drain the workers a filter selects (previewed before anything happens),
 * end their drains, and cancel the tasks that wait. Admins drain; operators cancel.
 */
import { FINAL_TASK_STATUSES, TASK_TYPES, type Task, type Worker } from '@aetherium/sdk';
import { useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useTasks, useWorkers } from '../api/queries.ts';
import { useSession } from '../api/session.tsx';
import { Confirm } from '../components/Confirm.tsx';
import { DrainDialog } from '../components/DrainDialog.tsx';
import { count } from '../components/format.ts';
import { Card, Empty, ErrorNote, PageTitle, StatusBadge } from '../components/ui.tsx';
import { filterFromParams, matches, paramsFromFilter } from '../components/worker-filter.ts';
import { WorkerFilters } from '../components/WorkerFilters.tsx';
import { runBounded } from '../api/bulk.ts';

function BulkDrain() {
  const { client } = useSession();
  const queryClient = useQueryClient();
  const [params, setParams] = useSearchParams();
  const filter = useMemo(() => filterFromParams(params), [params]);
  const workers = useWorkers();
  const [draining, setDraining] = useState(false);
  const [activating, setActivating] = useState<{ done: number; failures: string[] } | null>(null);
  const [confirmActivate, setConfirmActivate] = useState(false);
  const all = workers.data?.workers ?? [];
  const selected = useMemo(() => all.filter((w) => matches(w, filter)), [all, filter]);
  const drainable = selected.filter((w) => w.status === 'active');
  const activatable = selected.filter((w) => w.status === 'draining' || !w.eligible);
  const anyFilter = Boolean(filter.q || filter.zone || filter.status || filter.capability || filter.labels.length);

  const activateAll = async () => {
    setConfirmActivate(false);
    setActivating({ done: 0, failures: [] });
    const failures = await runBounded(
      activatable,
      (w: Worker) => client.workers.activate(w.id),
      (_w, _error, done) => setActivating((a) => ({ done, failures: a?.failures ?? [] })),
    );
    setActivating({ done: activatable.length, failures: failures.map((f) => `${f.item.id}: ${f.error}`) });
    void queryClient.invalidateQueries({ queryKey: ['workers'] });
  };

  return (
    <Card title="Drain workers">
      <div className="space-y-3">
        <WorkerFilters
          workers={all}
          filter={filter}
          onChange={(next) => setParams(paramsFromFilter(next, params), { replace: true })}
        />
        <p className="text-sm" data-testid="bulk-preview">
          {anyFilter
            ? `${count(selected.length, 'worker')} ${selected.length === 1 ? 'matches' : 'match'}: `
            : 'Choose workers with the filters above. '}
          {anyFilter ? `${drainable.length} can be drained, ${activatable.length} can be activated.` : ''}
        </p>
        {anyFilter && selected.length ? (
          <ul className="max-h-48 overflow-auto rounded border border-slate-200 p-2 text-xs dark:border-slate-700">
            {selected.slice(0, 200).map((w) => (
              <li key={w.id} className="flex items-center gap-2 py-0.5">
                <Link to={`/workers/${encodeURIComponent(w.id)}`} className="link font-mono">
                  {w.id}
                </Link>
                <StatusBadge status={w.status} /> {w.zone} · {w.vm_count} VMs
              </li>
            ))}
            {selected.length > 200 ? <li className="muted">… and {selected.length - 200} more</li> : null}
          </ul>
        ) : null}
        <div className="flex gap-2">
          <button
            type="button"
            className="btn btn-primary"
            disabled={!anyFilter || drainable.length === 0}
            onClick={() => setDraining(true)}
          >
            {anyFilter ? `Drain ${count(drainable.length, 'worker')}…` : 'Drain…'}
          </button>
          <button
            type="button"
            className="btn"
            disabled={!anyFilter || activatable.length === 0}
            onClick={() => setConfirmActivate(true)}
          >
            {anyFilter ? `Activate ${count(activatable.length, 'worker')}…` : 'Activate…'}
          </button>
        </div>
        {activating ? (
          <p className="text-sm" role="status">
            Activated {activating.done} of {activatable.length || activating.done}. {activating.failures.join('; ')}
          </p>
        ) : null}
      </div>
      {draining ? <DrainDialog workers={drainable} onClose={() => setDraining(false)} /> : null}
      {confirmActivate ? (
        <Confirm
          title={`Activate ${count(activatable.length, 'worker')}?`}
          confirm="Confirm activate"
          onConfirm={activateAll}
          onClose={() => setConfirmActivate(false)}
        >
          <p>Their drains end and new VMs may be placed on them again.</p>
        </Confirm>
      ) : null}
    </Card>
  );
}

function BulkCancel() {
  const { client } = useSession();
  const queryClient = useQueryClient();
  const [status, setStatus] = useState<'pending' | 'scheduled'>('pending');
  const [type, setType] = useState('');
  const tasks = useTasks({ status, ...(type ? { type: type as Task['type'] } : {}) });
  const [confirming, setConfirming] = useState(false);
  const [result, setResult] = useState<{ done: number; failures: string[] } | null>(null);
  const list = (tasks.data?.tasks ?? []).filter((t) => !FINAL_TASK_STATUSES.includes(t.status));

  const cancelAll = async () => {
    setConfirming(false);
    const targets = list;
    setResult({ done: 0, failures: [] });
    const failures = await runBounded(
      targets,
      (t: Task) => client.tasks.cancel(t.id),
      (_t, _error, done) => setResult((r) => ({ done, failures: r?.failures ?? [] })),
    );
    setResult({ done: targets.length, failures: failures.map((f) => `${f.item.id}: ${f.error}`) });
    void queryClient.invalidateQueries({ queryKey: ['tasks'] });
  };

  return (
    <Card title="Cancel waiting tasks">
      <div className="space-y-3">
        <div className="flex flex-wrap gap-2">
          <label className="flex flex-col gap-1">
            <span className="label">Status</span>
            <select
              className="input"
              value={status}
              onChange={(e) => setStatus(e.target.value as 'pending' | 'scheduled')}
            >
              <option value="pending">pending</option>
              <option value="scheduled">scheduled</option>
            </select>
          </label>
          <label className="flex flex-col gap-1">
            <span className="label">Type</span>
            <select className="input" value={type} onChange={(e) => setType(e.target.value)}>
              <option value="">Any type</option>
              {TASK_TYPES.map((t) => (
                <option key={t}>{t}</option>
              ))}
            </select>
          </label>
        </div>
        <ErrorNote error={tasks.error} />
        {list.length === 0 && tasks.data ? (
          <Empty>
            No {status} tasks{type ? ` of type ${type}` : ''}.
          </Empty>
        ) : null}
        {list.length ? (
          <ul className="max-h-48 overflow-auto rounded border border-slate-200 p-2 text-xs dark:border-slate-700">
            {list.slice(0, 200).map((t) => (
              <li key={t.id}>
                <Link to={`/tasks/${t.id}`} className="link font-mono">
                  {t.id}
                </Link>{' '}
                {t.type}
              </li>
            ))}
          </ul>
        ) : null}
        <button
          type="button"
          className="btn btn-danger"
          disabled={list.length === 0}
          onClick={() => setConfirming(true)}
        >
          Cancel {count(list.length, 'task')}…
        </button>
        {result ? (
          <p className="text-sm" role="status">
            Cancelled {result.done - result.failures.length} of {result.done}. {result.failures.join('; ')}
          </p>
        ) : null}
      </div>
      {confirming ? (
        <Confirm
          title={`Cancel ${count(list.length, 'task')}?`}
          confirm="Confirm cancel"
          danger
          onConfirm={cancelAll}
          onClose={() => setConfirming(false)}
        >
          <p>They never run; VMs they would have created are left failed.</p>
        </Confirm>
      ) : null}
    </Card>
  );
}

export default function Control() {
  const { can, identity } = useSession();
  return (
    <>
      <PageTitle title="Control" />
      {!can('operator') ? (
        <Empty>Your role ({identity.role}) can look but not control: ask for an operator or admin key.</Empty>
      ) : null}
      <div className="space-y-4">
        {can('admin') ? <BulkDrain /> : null}
        {can('operator') ? <BulkCancel /> : null}
      </div>
    </>
  );
}
