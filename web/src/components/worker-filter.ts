/**
 * The workers filter, kept in the URL (`?q=&zone=&status=&capability=&label=k=v`) so that a view
 * can be shared, and used by both the workers table and the bulk drain preview.
 */
import type { Worker } from '@aetherium/sdk';

export interface WorkerFilter {
  q: string;
  zone: string;
  status: string;
  capability: string;
  /** `key=value` (or `key` alone: has the label). */
  labels: string[];
}

export function filterFromParams(params: URLSearchParams): WorkerFilter {
  return {
    q: params.get('q') ?? '',
    zone: params.get('zone') ?? '',
    status: params.get('status') ?? '',
    capability: params.get('capability') ?? '',
    labels: params.getAll('label').filter(Boolean),
  };
}

export function paramsFromFilter(filter: WorkerFilter, base = new URLSearchParams()): URLSearchParams {
  const params = new URLSearchParams(base);
  for (const key of ['q', 'zone', 'status', 'capability', 'label']) params.delete(key);
  if (filter.q) params.set('q', filter.q);
  if (filter.zone) params.set('zone', filter.zone);
  if (filter.status) params.set('status', filter.status);
  if (filter.capability) params.set('capability', filter.capability);
  for (const label of filter.labels) params.append('label', label);
  return params;
}

/** `status` also takes `ineligible` and `unhealthy`, which are not worker statuses but are asked for. */
function statusMatches(worker: Worker, status: string): boolean {
  if (!status) return true;
  if (status === 'ineligible') return !worker.eligible;
  if (status === 'unhealthy') return !worker.is_healthy;
  return worker.status === status;
}

export function matches(worker: Worker, filter: WorkerFilter): boolean {
  if (filter.zone && worker.zone !== filter.zone) return false;
  if (!statusMatches(worker, filter.status)) return false;
  if (filter.capability && !worker.capabilities.includes(filter.capability)) return false;
  for (const label of filter.labels) {
    const at = label.indexOf('=');
    const key = at < 0 ? label : label.slice(0, at);
    if (!(key in worker.labels)) return false;
    if (at >= 0 && worker.labels[key] !== label.slice(at + 1)) return false;
  }
  if (filter.q) {
    const q = filter.q.toLowerCase();
    const text = `${worker.id} ${worker.hostname} ${worker.address} ${worker.zone} ${Object.entries(worker.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')}`.toLowerCase();
    if (!text.includes(q)) return false;
  }
  return true;
}

/** The values each filter can take, from the workers there are. */
export function facets(workers: readonly Worker[]): { zones: string[]; capabilities: string[]; labels: string[] } {
  const zones = new Set<string>();
  const capabilities = new Set<string>();
  const labels = new Set<string>();
  for (const w of workers) {
    zones.add(w.zone);
    for (const c of w.capabilities) capabilities.add(c);
    for (const [k, v] of Object.entries(w.labels)) labels.add(`${k}=${v}`);
  }
  const sorted = (s: Set<string>) => [...s].sort();
  return { zones: sorted(zones), capabilities: sorted(capabilities), labels: sorted(labels).slice(0, 200) };
}
