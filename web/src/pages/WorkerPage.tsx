/** One worker: its resources, their history on the server, its VMs, its live log, its drain. */
import type { MetricSample, Worker } from '@aetherium/sdk';
import { useMemo } from 'react';
import { Link, useParams } from 'react-router';
import { useWorker, useWorkerMetrics, useWorkerVms } from '../api/queries.ts';
import { useSession } from '../api/session.tsx';
import { ChartCanvas } from '../components/ChartCanvas.tsx';
import { ago, cores, mb, pct, time } from '../components/format.ts';
import {
  Badge,
  Card,
  Empty,
  ErrorNote,
  KeyValues,
  PageFailed,
  PageTitle,
  Spinner,
  StatusBadge,
  UsageBar,
} from '../components/ui.tsx';
import { VmTable } from '../components/VmTable.tsx';
import { WorkerActions } from '../components/WorkerActions.tsx';
import { WorkerLogs } from '../components/WorkerLogs.tsx';

function DrainState({ worker }: { worker: Worker }) {
  const d = worker.drain;
  if (!d)
    return (
      <p className="text-sm muted">
        {worker.eligible ? 'Not draining: new VMs may be placed here.' : 'Ineligible: no new VMs are placed here.'}
      </p>
    );
  return (
    <div data-testid="drain-state">
      <KeyValues
        items={[
          ['Started', `${time(d.started_at)} (${ago(d.started_at)})`],
          ['Deadline', d.deadline ? `${time(d.deadline)} (${ago(d.deadline)})` : 'none: waits for every VM'],
          ['Message', d.message ?? '—'],
          ['Enforced', d.enforced_at ? time(d.enforced_at) : 'not yet'],
          ['Drained', d.drained_at ? time(d.drained_at) : `not yet: ${worker.vm_count} VMs left`],
        ]}
      />
    </div>
  );
}

function Resource({
  label,
  used,
  total,
  percent,
  unit,
}: {
  label: string;
  used: string;
  total: string;
  percent: number;
  unit?: string;
}) {
  return (
    <div>
      <div className="mb-1 flex justify-between text-sm">
        <span>{label}</span>
        <span className="tabular-nums">
          {used} / {total}
          {unit ? ` ${unit}` : ''} · {pct(percent)}
        </span>
      </div>
      <UsageBar used={percent} label={`${label} reserved`} />
    </div>
  );
}

function Timeline({ samples }: { samples: MetricSample[] }) {
  const config = useMemo(() => {
    const ordered = [...samples].reverse();
    return {
      type: 'line' as const,
      data: {
        labels: ordered.map((s) => new Date(s.timestamp).toLocaleTimeString()),
        datasets: [
          {
            label: 'CPU %',
            data: ordered.map((s) => s.cpu_usage),
            borderColor: '#6366f1',
            pointRadius: 0,
            tension: 0,
          },
          {
            label: 'Memory %',
            data: ordered.map((s) => s.memory_usage),
            borderColor: '#10b981',
            pointRadius: 0,
            tension: 0,
          },
          {
            label: 'Disk %',
            data: ordered.map((s) => s.disk_usage),
            borderColor: '#f59e0b',
            pointRadius: 0,
            tension: 0,
          },
        ],
      },
      options: { scales: { x: { ticks: { maxTicksLimit: 8 } }, y: { beginAtZero: true, max: 100 } } },
    };
  }, [samples]);
  const last = samples[0];
  return (
    <ChartCanvas
      config={config}
      summary={
        last
          ? `Resource usage over ${samples.length} samples; latest CPU ${last.cpu_usage}%, memory ${last.memory_usage}%, disk ${last.disk_usage}%.`
          : 'No samples.'
      }
    />
  );
}

export default function WorkerPage() {
  const id = useParams().id!;
  const { can } = useSession();
  const worker = useWorker(id);
  const vms = useWorkerVms(id);
  const metrics = useWorkerMetrics(id);

  if (worker.isPending) return <Spinner label="Loading the worker" />;
  if (worker.isError)
    return <PageFailed title={`Worker ${id}`} error={worker.error} back={{ to: '/workers', label: 'All workers' }} />;
  const w = worker.data;
  return (
    <>
      <PageTitle title={`Worker ${w.id}`}>
        <StatusBadge status={w.status} />
        {!w.eligible ? <StatusBadge status="ineligible" /> : null}
        {w.is_healthy ? <Badge tone="green">healthy</Badge> : <Badge tone="red">unhealthy</Badge>}
      </PageTitle>
      <p className="-mt-3 mb-4 text-sm">
        <Link to="/workers" className="link">
          ← All workers
        </Link>
      </p>
      <div className="grid gap-4 lg:grid-cols-3">
        <Card title="Resources reserved" className="lg:col-span-2">
          <div className="space-y-3">
            <Resource
              label="CPU"
              used={cores(w.used_cpu_cores)}
              total={cores(w.cpu_cores)}
              unit="cores"
              percent={w.cpu_usage_percent}
            />
            <Resource
              label="Memory"
              used={mb(w.used_memory_mb)}
              total={mb(w.memory_mb)}
              percent={w.memory_usage_percent}
            />
            <Resource
              label="Disk"
              used={`${w.used_disk_gb}`}
              total={`${w.disk_gb}`}
              unit="GB"
              percent={w.disk_usage_percent}
            />
            <Resource
              label="VM slots"
              used={`${w.vm_count}`}
              total={`${w.max_vms}`}
              percent={w.max_vms ? (w.vm_count / w.max_vms) * 100 : 0}
            />
          </div>
        </Card>
        <Card title="Details">
          <KeyValues
            items={[
              ['Hostname', w.hostname],
              [
                'Address',
                <span key="a" className="font-mono text-xs">
                  {w.address}
                </span>,
              ],
              ['Zone', w.zone],
              ['Drivers', w.capabilities.join(', ') || '—'],
              [
                'Labels',
                Object.entries(w.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(', ') || '—',
              ],
              ['Up', w.uptime],
              ['Last seen', ago(w.last_seen)],
            ]}
          />
        </Card>
        <Card title="Drain" className="lg:col-span-3" actions={<WorkerActions worker={w} />}>
          <DrainState worker={w} />
        </Card>
        <Card title="Resource history (server-side)" className="lg:col-span-3">
          <p className="mb-2 text-xs muted">
            What the host uses, as the worker measures it (all its processes, not only its VMs), kept by the control
            plane; the bars above are what the scheduler has reserved.
          </p>
          {metrics.isError ? <ErrorNote error={metrics.error} /> : null}
          {metrics.data && metrics.data.metrics.length < 2 ? (
            <Empty>Collecting samples: the worker sends one every metrics interval (30 s by default).</Empty>
          ) : null}
          {metrics.data && metrics.data.metrics.length >= 2 ? <Timeline samples={metrics.data.metrics} /> : null}
        </Card>
        <Card title={`VMs${vms.data ? ` (${vms.data.total})` : ''}`} className="lg:col-span-3">
          {vms.isError ? <ErrorNote error={vms.error} /> : null}
          {vms.data && vms.data.vms.length === 0 ? <Empty>No VMs on this worker.</Empty> : null}
          {vms.data && vms.data.vms.length > 0 ? (
            <VmTable vms={vms.data.vms} label={`VMs on ${w.id}`} maxHeight="24rem" />
          ) : null}
        </Card>
        <Card title="Live log" className="lg:col-span-3">
          {can('operator') ? <WorkerLogs workerId={w.id} /> : <Empty>An operator key sees the worker's log.</Empty>}
        </Card>
      </div>
    </>
  );
}
