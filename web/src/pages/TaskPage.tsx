/** One task: where it is, why it waits (the scheduler's explanation), its result, and cancel. */
import { FINAL_TASK_STATUSES, type Task } from '@aetherium/sdk';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useParams } from 'react-router';
import { keys } from '../api/keys.ts';
import { useTask } from '../api/queries.ts';
import { useSession } from '../api/session.tsx';
import { Confirm } from '../components/Confirm.tsx';
import { time } from '../components/format.ts';
import { pendingReason } from '../components/pending.ts';
import { PlacementView } from '../components/PlacementView.tsx';
import { Card, KeyValues, PageFailed, PageTitle, Spinner, StatusBadge } from '../components/ui.tsx';

function CancelButton({ task }: { task: Task }) {
  const { client, can } = useSession();
  const queryClient = useQueryClient();
  const [confirming, setConfirming] = useState(false);
  const cancel = useMutation({
    mutationFn: () => client.tasks.cancel(task.id),
    onSuccess: () => {
      setConfirming(false);
      void queryClient.invalidateQueries({ queryKey: keys.task(task.id) });
    },
  });
  if (!can('operator') || FINAL_TASK_STATUSES.includes(task.status)) return null;
  return (
    <>
      <button type="button" className="btn btn-danger" onClick={() => setConfirming(true)}>
        Cancel task
      </button>
      {confirming ? (
        <Confirm
          title={`Cancel task ${task.id}?`}
          confirm="Confirm cancel"
          danger
          busy={cancel.isPending}
          error={cancel.error}
          onConfirm={() => cancel.mutate()}
          onClose={() => setConfirming(false)}
        >
          <p>
            {task.status === 'running' ? 'It is running: its worker aborts it.' : 'It has not started: it never will.'}{' '}
            {task.type === 'vm:create' ? 'The VM is left failed; delete it to free its name.' : ''}
          </p>
        </Confirm>
      ) : null}
    </>
  );
}

export default function TaskPage() {
  const id = useParams().id!;
  const task = useTask(id);
  if (task.isPending) return <Spinner label="Loading the task" />;
  if (task.isError)
    return <PageFailed title={`Task ${id}`} error={task.error} back={{ to: '/tasks', label: 'The task queue' }} />;
  const t = task.data;
  const waiting = t.status === 'pending' || t.status === 'scheduled';
  return (
    <>
      <PageTitle title={`Task ${t.id}`}>
        <span data-testid="task-status">
          <StatusBadge status={t.status} />
        </span>
        <CancelButton task={t} />
      </PageTitle>
      <p className="-mt-3 mb-4 text-sm">
        <Link to="/tasks" className="link">
          ← The task queue
        </Link>
      </p>
      <div className="grid gap-4 lg:grid-cols-2">
        {waiting ? (
          <Card title="Why it waits" className="lg:col-span-2">
            <p className="text-sm" data-testid="pending-reason">
              {pendingReason(t)}
            </p>
          </Card>
        ) : null}
        <Card title="Task">
          <KeyValues
            items={[
              ['Type', t.type],
              [
                'VM',
                t.vm_id ? (
                  <Link key="v" className="link font-mono text-xs" to={`/vms/${t.vm_id}`}>
                    {t.vm_id}
                  </Link>
                ) : (
                  '—'
                ),
              ],
              [
                'Worker',
                t.worker_id ? (
                  <Link key="w" className="link font-mono text-xs" to={`/workers/${encodeURIComponent(t.worker_id)}`}>
                    {t.worker_id}
                  </Link>
                ) : (
                  '—'
                ),
              ],
              ['Attempts', `${t.retry_count + 1} of ${t.max_retries + 1}`],
              ['Created', time(t.created_at)],
              ['Started', time(t.started_at)],
              ['Ended', time(t.completed_at)],
              ['Cancel asked', time(t.cancel_requested_at)],
              ['Error', t.error ?? '—'],
            ]}
          />
        </Card>
        <Card title="Payload and result">
          <pre className="max-h-72 overflow-auto rounded bg-slate-100 p-2 text-xs dark:bg-slate-800">
            {JSON.stringify({ payload: t.payload, result: t.result }, null, 2)}
          </pre>
        </Card>
        {t.type === 'vm:create' && t.placement ? (
          <Card title="Scheduler's explanation" className="lg:col-span-2">
            <PlacementView explanation={t.placement} />
          </Card>
        ) : null}
      </div>
    </>
  );
}
