/**
 * Where the VMs are: one cell per worker, grouped by zone, coloured by how full it is; a cell is a
 * link to the worker. Ten thousand VMs on a thousand workers are a thousand small squares.
 */
import type { ClusterDistribution } from '@aetherium/sdk';
import { useMemo } from 'react';
import { Link } from 'react-router';

const SHADES = [
  'bg-slate-200 dark:bg-slate-700',
  'bg-emerald-200 dark:bg-emerald-900',
  'bg-emerald-400 dark:bg-emerald-700',
  'bg-amber-400 dark:bg-amber-600',
  'bg-red-500 dark:bg-red-600',
];

function shade(count: number, max: number): string {
  if (count === 0) return SHADES[0]!;
  const f = max > 0 ? count / max : 1;
  return SHADES[f < 0.34 ? 1 : f < 0.67 ? 2 : f < 0.9 ? 3 : 4]!;
}

export function Heatmap({ distribution }: { distribution: ClusterDistribution }) {
  const zones = useMemo(() => {
    const byZone = new Map<string, ClusterDistribution['distribution']>();
    for (const d of distribution.distribution) byZone.set(d.zone, [...(byZone.get(d.zone) ?? []), d]);
    return [...byZone.entries()].sort(([a], [b]) => a.localeCompare(b));
  }, [distribution]);
  return (
    <div className="space-y-4" data-testid="heatmap">
      <p className="flex flex-wrap items-center gap-2 text-xs muted">
        Fill:
        {['empty', 'under a third', 'under two thirds', 'under 90%', 'full'].map((label, i) => (
          <span key={label} className="inline-flex items-center gap-1">
            <span className={`inline-block size-3 rounded-sm ${SHADES[i]}`} aria-hidden /> {label}
          </span>
        ))}
      </p>
      {zones.map(([zone, workers]) => (
        <section key={zone} aria-label={`Zone ${zone}`}>
          <h3 className="mb-1 text-sm font-semibold">
            {zone}{' '}
            <span className="font-normal muted">
              · {workers.length} workers · {workers.reduce((n, w) => n + w.vm_count, 0)} VMs
            </span>
          </h3>
          <ul className="flex flex-wrap gap-1">
            {workers.map((w) => (
              <li key={w.worker_id}>
                <Link
                  to={`/workers/${encodeURIComponent(w.worker_id)}`}
                  className={`block size-5 rounded-sm ${shade(w.vm_count, w.max_vms)} ${w.status !== 'active' ? 'ring-2 ring-slate-500 ring-inset' : ''}`}
                  title={`${w.worker_id} (${w.status}): ${w.vm_count}/${w.max_vms} VMs`}
                  aria-label={`${w.worker_id}, ${w.status}, ${w.vm_count} of ${w.max_vms} VMs`}
                />
              </li>
            ))}
          </ul>
        </section>
      ))}
    </div>
  );
}
