/** One VM: how far its create got (and why it waits), its commands, and a terminal into it. */
import type { TaskOf, Vm, VmData } from '@aetherium/sdk';
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useState } from 'react';
import { Link, useNavigate, useParams } from 'react-router';
import { keys } from '../api/keys.ts';
import { useExecutions, useTasks, useVm } from '../api/queries.ts';
import { useSession } from '../api/session.tsx';
import { BootWaterfall } from '../components/BootWaterfall.tsx';
import { Confirm } from '../components/Confirm.tsx';
import { ago, duration, mb, time, type When } from '../components/format.ts';
import { Card, Empty, ErrorNote, KeyValues, PageFailed, PageTitle, Spinner, StatusBadge } from '../components/ui.tsx';

const Terminal = lazy(() => import('../components/Terminal.tsx'));

type Phase = { name: string; state: 'done' | 'now' | 'later' | 'failed'; at: When; detail: string };

function phasesOf(vm: VmData, task: TaskOf<'vm:create'> | undefined): Phase[] {
  const failed = task?.status === 'failed' || task?.status === 'cancelled';
  const s = task?.status ?? 'pending';
  const order = ['pending', 'scheduled', 'running', 'completed'];
  const reached = failed ? (task?.started_at ? 2 : task?.worker_id ? 1 : 0) : order.indexOf(s);
  const state = (i: number): Phase['state'] =>
    i < reached || s === 'completed' ? 'done' : i === reached ? (failed ? 'failed' : 'now') : 'later';
  return [
    {
      name: 'Queued',
      state: state(0),
      at: task?.created_at ?? vm.created_at,
      detail: vm.pending_reason ?? (reached === 0 ? 'waiting for the scheduler' : ''),
    },
    {
      name: 'Placed',
      state: state(1),
      at: task?.placement?.placed_at ?? null,
      detail: task?.worker_id
        ? `on ${task.worker_id}${task.placement?.chosen ? ` (${task.placement.chosen.driver}, score ${task.placement.chosen.score.toFixed(2)})` : ''}`
        : '',
    },
    { name: 'Booting', state: state(2), at: task?.started_at ?? null, detail: '' },
    {
      name: 'Running',
      state: s === 'completed' ? 'done' : failed ? 'failed' : 'later',
      at: task?.completed_at ?? null,
      detail: failed
        ? `${task?.status}: ${task?.error ?? ''}`
        : task?.result?.boot_ms
          ? `booted in ${duration(task.result.boot_ms)}`
          : '',
    },
  ];
}

const DOT = {
  done: 'bg-emerald-600',
  now: 'bg-amber-500 animate-pulse',
  later: 'bg-slate-300 dark:bg-slate-600',
  failed: 'bg-red-600',
};

function Phases({ vm, task }: { vm: VmData; task: TaskOf<'vm:create'> | undefined }) {
  return (
    <ol className="grid gap-3 sm:grid-cols-4" data-testid="vm-phases">
      {phasesOf(vm, task).map((p) => (
        <li key={p.name} className="flex gap-2" data-phase={p.name.toLowerCase()} data-state={p.state}>
          <span className={`mt-1 size-3 shrink-0 rounded-full ${DOT[p.state]}`} aria-hidden />
          <div className="min-w-0 text-sm">
            <div className="font-medium">
              {p.name} <span className="sr-only">({p.state})</span>
            </div>
            <div className="text-xs muted">{p.at ? time(p.at) : '—'}</div>
            {p.detail ? <div className="text-xs break-words">{p.detail}</div> : null}
          </div>
        </li>
      ))}
    </ol>
  );
}

function Executions({ vmId }: { vmId: string }) {
  const executions = useExecutions(vmId);
  if (executions.isPending) return <Spinner label="Loading commands" />;
  if (executions.isError) return <ErrorNote error={executions.error} />;
  if (executions.data.executions.length === 0) return <Empty>No command has run in this VM yet.</Empty>;
  return (
    <ul className="divide-y divide-slate-100 dark:divide-slate-800" data-testid="executions">
      {executions.data.executions.slice(0, 50).map((e) => (
        <li key={e.id} className="py-2 text-sm">
          <div className="flex flex-wrap items-center gap-2">
            <code className="font-mono">{[e.command, ...e.args].join(' ')}</code>
            <StatusBadge status={e.exit_code === 0 ? 'completed' : 'failed'} />
            <span className="text-xs muted">
              exit {e.exit_code} · {duration(e.duration_ms)} · {ago(e.completed_at)}
            </span>
          </div>
          {e.stdout || e.stderr ? (
            <pre className="mt-1 max-h-32 overflow-auto rounded bg-slate-100 p-2 text-xs dark:bg-slate-800">
              {e.stdout}
              {e.stderr ? <span className="text-red-700 dark:text-red-300">{e.stderr}</span> : null}
            </pre>
          ) : null}
        </li>
      ))}
    </ul>
  );
}

function PowerActions({ vm }: { vm: VmData }) {
  const { client, can } = useSession();
  const queryClient = useQueryClient();
  const navigate = useNavigate();
  const [confirming, setConfirming] = useState(false);
  const action = useMutation({
    mutationFn: async (what: 'start' | 'stop' | 'delete') => {
      const handle = await client.vms.get(vm.id);
      return what === 'delete' ? handle.delete() : handle[what]();
    },
    onSuccess: (_r, what) => {
      void queryClient.invalidateQueries({ queryKey: keys.vm(vm.id) });
      if (what === 'delete') navigate('/vms');
    },
  });
  if (!can('operator')) return null;
  return (
    <>
      {vm.status === 'stopped' ? (
        <button type="button" className="btn" disabled={action.isPending} onClick={() => action.mutate('start')}>
          Start
        </button>
      ) : null}
      {vm.status === 'running' ? (
        <button type="button" className="btn" disabled={action.isPending} onClick={() => action.mutate('stop')}>
          Stop
        </button>
      ) : null}
      <button type="button" className="btn btn-danger" onClick={() => setConfirming(true)}>
        Delete
      </button>
      {action.error && !confirming ? <ErrorNote error={action.error} /> : null}
      {confirming ? (
        <Confirm
          title={`Delete ${vm.name}?`}
          confirm="Delete VM"
          danger
          busy={action.isPending}
          error={action.error}
          onConfirm={() => action.mutate('delete')}
          onClose={() => setConfirming(false)}
        >
          <p>The VM stops and its disk is removed. Its commands' records stay.</p>
        </Confirm>
      ) : null}
    </>
  );
}

function TerminalCard({ vm }: { vm: VmData }) {
  const { client, can } = useSession();
  const queryClient = useQueryClient();
  const handle = useQuery({
    queryKey: ['vm-handle', vm.id],
    queryFn: () => client.vms.get(vm.id),
    staleTime: Number.POSITIVE_INFINITY,
  });
  if (!can('operator')) return <Empty>An operator key opens a terminal here.</Empty>;
  if (vm.status !== 'running') return <Empty>The terminal opens once the VM runs (it is {vm.status}).</Empty>;
  if (handle.isError) return <ErrorNote error={handle.error} />;
  if (!handle.data) return <Spinner label="Opening the terminal" />;
  return (
    <Suspense fallback={<Spinner label="Loading the terminal" />}>
      <Terminal
        vm={handle.data as Vm}
        onRan={() => void queryClient.invalidateQueries({ queryKey: keys.executions(vm.id) })}
      />
    </Suspense>
  );
}

export default function VmPage() {
  const id = useParams().id!;
  const vm = useVm(id);
  const creates = useTasks({ vm_id: id, type: 'vm:create' });
  if (vm.isPending) return <Spinner label="Loading the VM" />;
  if (vm.isError) return <PageFailed title={`VM ${id}`} error={vm.error} back={{ to: '/vms', label: 'All VMs' }} />;
  const v = vm.data;
  const task = creates.data?.tasks[0] as TaskOf<'vm:create'> | undefined;
  return (
    <>
      <PageTitle title={`VM ${v.name}`}>
        <span data-testid="vm-status">
          <StatusBadge status={v.status} />
        </span>
        <PowerActions vm={v} />
      </PageTitle>
      <p className="-mt-3 mb-4 text-sm">
        <Link to="/vms" className="link">
          ← All VMs
        </Link>
      </p>
      <div className="grid gap-4 lg:grid-cols-3">
        <Card title="Create" className="lg:col-span-3">
          <Phases vm={v} task={task} />
          <BootWaterfall phases={v.phases} />
          {task ? (
            <p className="mt-3 text-xs">
              <Link to={`/tasks/${task.id}`} className="link">
                Its task and the scheduler's explanation
              </Link>
            </p>
          ) : null}
        </Card>
        <Card title="Details">
          <KeyValues
            items={[
              [
                'Id',
                <span key="i" className="font-mono text-xs">
                  {v.id}
                </span>,
              ],
              ['Size', `${v.vcpus} vCPU · ${mb(v.memory_mb)} · ${v.disk_gb} GB`],
              ['Driver', v.driver ?? '—'],
              ['Image', v.image ?? 'default'],
              [
                'Worker',
                v.worker_id ? (
                  <Link key="w" className="link" to={`/workers/${encodeURIComponent(v.worker_id)}`}>
                    {v.worker_id}
                  </Link>
                ) : (
                  'not placed'
                ),
              ],
              ['Zone', v.zone ?? '—'],
              [
                'Labels',
                Object.entries(v.labels)
                  .map(([k, val]) => `${k}=${val}`)
                  .join(', ') || '—',
              ],
              ['Created', time(v.created_at)],
              ['Error', v.error ?? '—'],
            ]}
          />
        </Card>
        <Card title="Terminal" className="lg:col-span-2">
          <TerminalCard vm={v} />
        </Card>
        <Card title="Commands" className="lg:col-span-3">
          <Executions vmId={v.id} />
        </Card>
      </div>
    </>
  );
}
