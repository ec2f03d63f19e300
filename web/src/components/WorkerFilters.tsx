import type { Worker } from '@aetherium/sdk';
import { WORKER_STATUSES } from '@aetherium/sdk';
import { useMemo } from 'react';
import { facets, type WorkerFilter } from './worker-filter.ts';

/** The search box and the zone, status, capability and label filters of a workers view. */
export function WorkerFilters({
  workers,
  filter,
  onChange,
}: {
  workers: readonly Worker[];
  filter: WorkerFilter;
  onChange: (filter: WorkerFilter) => void;
}) {
  const f = useMemo(() => facets(workers), [workers]);
  const set = (change: Partial<WorkerFilter>) => onChange({ ...filter, ...change });
  return (
    <search className="flex flex-wrap items-end gap-2">
      <label className="flex flex-col gap-1">
        <span className="label">Search</span>
        <input
          className="input w-56"
          type="search"
          placeholder="id, host, zone, label  ( / )"
          value={filter.q}
          data-search
          data-testid="workers-search"
          onChange={(e) => set({ q: e.target.value })}
        />
      </label>
      <label className="flex flex-col gap-1">
        <span className="label">Zone</span>
        <select className="input" value={filter.zone} onChange={(e) => set({ zone: e.target.value })}>
          <option value="">Any zone</option>
          {f.zones.map((z) => (
            <option key={z}>{z}</option>
          ))}
        </select>
      </label>
      <label className="flex flex-col gap-1">
        <span className="label">Status</span>
        <select className="input" value={filter.status} onChange={(e) => set({ status: e.target.value })}>
          <option value="">Any status</option>
          {WORKER_STATUSES.map((s) => (
            <option key={s}>{s}</option>
          ))}
          <option value="ineligible">ineligible</option>
          <option value="unhealthy">unhealthy</option>
        </select>
      </label>
      <label className="flex flex-col gap-1">
        <span className="label">Driver</span>
        <select className="input" value={filter.capability} onChange={(e) => set({ capability: e.target.value })}>
          <option value="">Any driver</option>
          {f.capabilities.map((c) => (
            <option key={c}>{c}</option>
          ))}
        </select>
      </label>
      <label className="flex flex-col gap-1">
        <span className="label">Label</span>
        <select
          className="input"
          value={filter.labels[0] ?? ''}
          onChange={(e) => set({ labels: e.target.value ? [e.target.value] : [] })}
        >
          <option value="">Any label</option>
          {f.labels.map((l) => (
            <option key={l}>{l}</option>
          ))}
        </select>
      </label>
      {filter.q || filter.zone || filter.status || filter.capability || filter.labels.length ? (
        <button
          type="button"
          className="btn"
          onClick={() => onChange({ q: '', zone: '', status: '', capability: '', labels: [] })}
        >
          Clear filters
        </button>
      ) : null}
    </search>
  );
}
