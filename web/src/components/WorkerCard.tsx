import type { Worker } from '@aetherium/sdk';
import { Link } from 'react-router';
import { cores, mb, pct } from './format.ts';
import { StatusBadge, UsageBar } from './ui.tsx';

/** A worker at a glance: status, zone, and how full it is. */
export function WorkerCard({ worker }: { worker: Worker }) {
  return (
    <article className="card p-3" aria-label={`Worker ${worker.id}`}>
      <div className="mb-2 flex items-center justify-between gap-2">
        <Link to={`/workers/${encodeURIComponent(worker.id)}`} className="link truncate font-mono text-sm">
          {worker.id}
        </Link>
        <span className="flex gap-1">
          <StatusBadge status={worker.status} />
          {!worker.eligible && worker.status === 'active' ? <StatusBadge status="ineligible" /> : null}
        </span>
      </div>
      <p className="mb-2 text-xs muted">
        {worker.zone} · {worker.vm_count}/{worker.max_vms} VMs
      </p>
      <div className="space-y-1.5 text-xs">
        <div>
          <div className="flex justify-between">
            <span>CPU</span>
            <span>
              {cores(worker.used_cpu_cores)}/{cores(worker.cpu_cores)} · {pct(worker.cpu_usage_percent)}
            </span>
          </div>
          <UsageBar used={worker.cpu_usage_percent} label={`${worker.id} CPU reserved`} />
        </div>
        <div>
          <div className="flex justify-between">
            <span>Memory</span>
            <span>
              {mb(worker.used_memory_mb)}/{mb(worker.memory_mb)} · {pct(worker.memory_usage_percent)}
            </span>
          </div>
          <UsageBar used={worker.memory_usage_percent} label={`${worker.id} memory reserved`} />
        </div>
      </div>
    </article>
  );
}
