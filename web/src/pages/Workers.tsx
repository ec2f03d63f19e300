/** Every worker in a table that filters as you type; the filter is in the URL, to share a view. */
import { useMemo } from 'react';
import { Link, useSearchParams } from 'react-router';
import { useWorkers } from '../api/queries.ts';
import { ago, count, pct } from '../components/format.ts';
import { ErrorNote, PageTitle, Spinner, StatusBadge } from '../components/ui.tsx';
import { VirtualTable } from '../components/VirtualRows.tsx';
import { filterFromParams, matches, paramsFromFilter } from '../components/worker-filter.ts';
import { WorkerFilters } from '../components/WorkerFilters.tsx';

export function Workers() {
  const [params, setParams] = useSearchParams();
  const filter = useMemo(() => filterFromParams(params), [params]);
  const workers = useWorkers();
  const all = workers.data?.workers ?? [];
  const shown = useMemo(
    () => all.filter((w) => matches(w, filter)).sort((a, b) => a.id.localeCompare(b.id)),
    [all, filter],
  );

  return (
    <>
      <PageTitle title="Workers">
        <span className="text-sm muted" data-testid="workers-count">
          {shown.length === all.length
            ? count(all.length, 'worker')
            : `${shown.length} of ${count(all.length, 'worker')}`}
        </span>
      </PageTitle>
      <div className="mb-3">
        <WorkerFilters
          workers={all}
          filter={filter}
          onChange={(next) => setParams(paramsFromFilter(next, params), { replace: true })}
        />
      </div>
      {workers.isPending ? <Spinner label="Loading workers" /> : null}
      {workers.isError ? <ErrorNote error={workers.error} /> : null}
      {workers.data ? (
        <VirtualTable
          label="Workers"
          rows={shown}
          rowKey={(w) => w.id}
          header={
            <tr>
              <th scope="col">Worker</th>
              <th scope="col">Status</th>
              <th scope="col">Zone</th>
              <th scope="col">VMs</th>
              <th scope="col">CPU</th>
              <th scope="col">Memory</th>
              <th scope="col">Drivers</th>
              <th scope="col">Labels</th>
              <th scope="col">Last seen</th>
            </tr>
          }
          row={(w) => (
            <tr key={w.id} data-testid={`worker-row-${w.id}`} className="h-[41px]">
              <td className="max-w-56 truncate">
                <Link to={`/workers/${encodeURIComponent(w.id)}`} className="link font-mono text-xs">
                  {w.id}
                </Link>
              </td>
              <td className="whitespace-nowrap">
                <StatusBadge status={w.status} />{' '}
                {!w.eligible && w.status === 'active' ? <StatusBadge status="ineligible" /> : null}
                {!w.is_healthy && w.status !== 'offline' ? <StatusBadge status="unhealthy" /> : null}
              </td>
              <td>{w.zone}</td>
              <td className="tabular-nums">
                {w.vm_count}/{w.max_vms}
              </td>
              <td className="tabular-nums">{pct(w.cpu_usage_percent)}</td>
              <td className="tabular-nums">{pct(w.memory_usage_percent)}</td>
              <td className="max-w-40 truncate text-xs">{w.capabilities.join(', ')}</td>
              <td className="max-w-48 truncate text-xs">
                {Object.entries(w.labels)
                  .map(([k, v]) => `${k}=${v}`)
                  .join(' ')}
              </td>
              <td className="whitespace-nowrap text-xs">{ago(w.last_seen)}</td>
            </tr>
          )}
        />
      ) : null}
    </>
  );
}
