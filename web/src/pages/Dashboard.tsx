/**
 * The cluster at a glance: totals, capacity gauges, where the workers and VMs are by zone, the
 * busiest workers, what waits and why, and the latest events. Every part is live.
 */
import type { ClusterDistribution, ClusterStats } from '@aetherium/sdk';
import { useMemo } from 'react';
import { Link } from 'react-router';
import { useEventLog } from '../api/live.tsx';
import { useDistribution, useStats, useTasks, useWorkers } from '../api/queries.ts';
import { ChartCanvas } from '../components/ChartCanvas.tsx';
import { EventLine } from '../components/EventLine.tsx';
import { cores, count, mb } from '../components/format.ts';
import { Gauge } from '../components/Gauge.tsx';
import { pendingReason } from '../components/pending.ts';
import { Card, Empty, ErrorNote, PageTitle, Spinner } from '../components/ui.tsx';
import { WorkerCard } from '../components/WorkerCard.tsx';

function Total({
  label,
  value,
  detail,
  testId,
}: {
  label: string;
  value: number | string;
  detail?: string;
  testId: string;
}) {
  return (
    <div className="card p-3">
      <div className="label">{label}</div>
      <div className="mt-1 text-2xl font-semibold tabular-nums" data-testid={testId}>
        {value}
      </div>
      {detail ? <div className="text-xs muted">{detail}</div> : null}
    </div>
  );
}

function Totals({ stats }: { stats: ClusterStats }) {
  return (
    <div className="grid grid-cols-2 gap-3 md:grid-cols-3 xl:grid-cols-6" data-testid="dashboard-totals">
      <Total
        label="Workers"
        value={stats.total_workers}
        detail={`${stats.healthy_workers} healthy`}
        testId="total-workers"
      />
      <Total label="Active" value={stats.active_workers} testId="active-workers" />
      <Total label="Draining" value={stats.draining_workers} testId="draining-workers" />
      <Total label="Offline" value={stats.offline_workers} testId="offline-workers" />
      <Total label="VMs" value={stats.total_vms} detail={`${stats.available_vm_slots} slots free`} testId="total-vms" />
      <Total
        label="Capacity free"
        value={stats.available_cpu_cores === 1 ? '1 core' : `${cores(stats.available_cpu_cores)} cores`}
        detail={`${mb(stats.available_memory_mb)} memory`}
        testId="capacity-free"
      />
    </div>
  );
}

function ZoneChart({ stats, distribution }: { stats: ClusterStats; distribution: ClusterDistribution | undefined }) {
  const config = useMemo(() => {
    const zones = Object.keys(stats.zones).sort();
    const vms = new Map<string, number>();
    for (const d of distribution?.distribution ?? []) vms.set(d.zone, (vms.get(d.zone) ?? 0) + d.vm_count);
    return {
      type: 'bar' as const,
      data: {
        labels: zones,
        datasets: [
          { label: 'Workers', data: zones.map((z) => stats.zones[z] ?? 0), backgroundColor: '#6366f1' },
          { label: 'VMs', data: zones.map((z) => vms.get(z) ?? 0), backgroundColor: '#10b981' },
        ],
      },
      options: { scales: { x: {}, y: { beginAtZero: true, ticks: { precision: 0 } } } },
    };
  }, [stats.zones, distribution]);
  const summary = Object.entries(stats.zones)
    .map(([zone, n]) => `${zone}: ${n} workers`)
    .join(', ');
  return <ChartCanvas config={config} summary={`Workers and VMs by zone. ${summary}`} />;
}

export function Dashboard() {
  const stats = useStats();
  const distribution = useDistribution();
  const workers = useWorkers();
  const pending = useTasks({ status: 'pending' });
  const log = useEventLog();

  const busiest = useMemo(
    () =>
      [...(workers.data?.workers ?? [])]
        .sort((a, b) => b.cpu_usage_percent - a.cpu_usage_percent || a.id.localeCompare(b.id))
        .slice(0, 8),
    [workers.data],
  );

  if (stats.isPending) return <Spinner label="Loading the cluster" />;
  if (stats.isError) return <ErrorNote error={stats.error} />;
  const s = stats.data;
  return (
    <>
      <PageTitle title="Dashboard" />
      <div className="space-y-4">
        <Totals stats={s} />
        <div className="grid gap-4 lg:grid-cols-3">
          <Card title="Capacity reserved">
            <div className="flex justify-around">
              <Gauge
                value={s.cluster_cpu_usage_percent}
                label="CPU"
                detail={`${cores(s.used_cpu_cores)} of ${cores(s.total_cpu_cores)} cores`}
              />
              <Gauge
                value={s.cluster_memory_usage_percent}
                label="Memory"
                detail={`${mb(s.used_memory_mb)} of ${mb(s.total_memory_mb)}`}
              />
            </div>
          </Card>
          <Card title="By zone" className="lg:col-span-2">
            <ZoneChart stats={s} distribution={distribution.data} />
          </Card>
        </div>
        <div className="grid gap-4 xl:grid-cols-3">
          <Card
            title="Busiest workers"
            className="xl:col-span-2"
            actions={
              <Link to="/workers" className="link text-sm">
                {workers.data ? `All ${count(workers.data.total, 'worker')}` : 'All workers'}
              </Link>
            }
          >
            {workers.isError ? <ErrorNote error={workers.error} /> : null}
            {busiest.length === 0 && !workers.isPending ? <Empty>No workers have joined yet.</Empty> : null}
            <div className="grid gap-3 sm:grid-cols-2 2xl:grid-cols-4">
              {busiest.map((w) => (
                <WorkerCard key={w.id} worker={w} />
              ))}
            </div>
          </Card>
          <Card
            title={`Pending tasks${pending.data ? ` (${pending.data.total})` : ''}`}
            actions={
              <Link to="/tasks?status=pending" className="link text-sm">
                Queue
              </Link>
            }
          >
            {pending.isError ? <ErrorNote error={pending.error} /> : null}
            {pending.data?.tasks.length === 0 ? <Empty>Nothing waits for a worker.</Empty> : null}
            <ul className="divide-y divide-slate-100 dark:divide-slate-800" data-testid="pending-tasks">
              {pending.data?.tasks.slice(0, 8).map((t) => (
                <li key={t.id} className="py-1.5 text-sm">
                  <Link to={`/tasks/${t.id}`} className="link font-mono text-xs">
                    {t.id}
                  </Link>{' '}
                  <span className="muted">{t.type}</span>
                  <div className="text-xs">{pendingReason(t)}</div>
                </li>
              ))}
            </ul>
          </Card>
        </div>
        <Card
          title="Recent events"
          actions={
            <Link to="/events" className="link text-sm">
              All events
            </Link>
          }
        >
          {log.length === 0 ? <Empty>No events since this page opened.</Empty> : null}
          <ul>
            {log.slice(0, 10).map((entry) => (
              <EventLine key={entry.kind === 'event' ? entry.event.id : entry.id} entry={entry} compact />
            ))}
          </ul>
        </Card>
      </div>
    </>
  );
}
