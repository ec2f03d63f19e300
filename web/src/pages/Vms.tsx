/** Every VM, as a list (filter by status, worker, name) or as a heatmap of where they run. */
import { VM_STATUSES, type VmData } from '@aetherium/sdk';
import { useMemo, useState } from 'react';
import { useSearchParams } from 'react-router';
import { useDistribution, useVms } from '../api/queries.ts';
import { useSession } from '../api/session.tsx';
import { CreateVmDialog } from '../components/CreateVmDialog.tsx';
import { Heatmap } from '../components/Heatmap.tsx';
import { Empty, ErrorNote, PageTitle, Spinner } from '../components/ui.tsx';
import { VmTable } from '../components/VmTable.tsx';

function List({ params, setParam }: { params: URLSearchParams; setParam: (k: string, v: string) => void }) {
  const status = params.get('status') ?? '';
  const q = params.get('q') ?? '';
  const vms = useVms(status ? { status: status as VmData['status'] } : {});
  const shown = useMemo(() => {
    const text = q.toLowerCase();
    return (vms.data?.vms ?? []).filter(
      (vm) =>
        !text || vm.name.includes(text) || vm.id.includes(text) || (vm.worker_id ?? '').toLowerCase().includes(text),
    );
  }, [vms.data, q]);
  return (
    <>
      <search className="mb-3 flex flex-wrap items-end gap-2">
        <label className="flex flex-col gap-1">
          <span className="label">Search</span>
          <input
            className="input w-56"
            type="search"
            data-search
            placeholder="name, id, worker  ( / )"
            value={q}
            onChange={(e) => setParam('q', e.target.value)}
          />
        </label>
        <label className="flex flex-col gap-1">
          <span className="label">Status</span>
          <select className="input" value={status} onChange={(e) => setParam('status', e.target.value)}>
            <option value="">Any status</option>
            {VM_STATUSES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </select>
        </label>
        <span className="text-sm muted" data-testid="vms-count">
          {vms.data
            ? `${shown.length} of ${vms.data.total} VMs${vms.data.total > vms.data.vms.length ? ` (the newest ${vms.data.vms.length} loaded)` : ''}`
            : ''}
        </span>
      </search>
      {vms.isPending ? <Spinner label="Loading VMs" /> : null}
      {vms.isError ? <ErrorNote error={vms.error} /> : null}
      {vms.data && vms.data.total === 0 ? (
        <Empty>
          No VMs yet{status ? ` with status ${status}` : ''}. Create one with “Create VM”, or `npx aetherium vm create`.
        </Empty>
      ) : null}
      {vms.data && vms.data.total > 0 && shown.length === 0 ? <Empty>No VM matches “{q}”.</Empty> : null}
      {vms.data && shown.length > 0 ? <VmTable vms={shown} /> : null}
    </>
  );
}

function Distribution() {
  const distribution = useDistribution();
  if (distribution.isPending) return <Spinner label="Loading the distribution" />;
  if (distribution.isError) return <ErrorNote error={distribution.error} />;
  return <Heatmap distribution={distribution.data} />;
}

export default function Vms() {
  const { can } = useSession();
  const [params, setParams] = useSearchParams();
  const [creating, setCreating] = useState(false);
  const view = params.get('view') === 'heatmap' ? 'heatmap' : 'list';
  const setParam = (key: string, value: string) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace: true });
  };
  return (
    <>
      <PageTitle title="VMs">
        <div
          role="tablist"
          aria-label="View"
          className="inline-flex rounded-md border border-slate-300 dark:border-slate-600"
        >
          {(['list', 'heatmap'] as const).map((v) => (
            <button
              key={v}
              type="button"
              role="tab"
              aria-selected={view === v}
              className={`px-3 py-1.5 text-sm ${view === v ? 'bg-indigo-700 text-white' : ''}`}
              onClick={() => setParam('view', v === 'list' ? '' : v)}
            >
              {v === 'list' ? 'List' : 'Distribution'}
            </button>
          ))}
        </div>
        {can('operator') ? (
          <button type="button" className="btn btn-primary" onClick={() => setCreating(true)}>
            Create VM
          </button>
        ) : null}
      </PageTitle>
      {view === 'list' ? <List params={params} setParam={setParam} /> : <Distribution />}
      {creating ? <CreateVmDialog onClose={() => setCreating(false)} /> : null}
    </>
  );
}
