/**
 * The shape of a VM as the create form and the what-if ask for it: size, driver, zone, strategy
 * and the labels a worker must have. The drivers and zones offered are the fleet's own.
 */
import { type DriverName, type PlanRequest, STRATEGIES, type Strategy } from '@aetherium/sdk';
import { useFleetOptions } from './fleet-options.ts';
import { Field } from './ui.tsx';

export interface VmShape {
  vcpus: string;
  memory: string;
  disk: string;
  driver: string;
  zone: string;
  strategy: string;
  workerLabels: string;
}

export const DEFAULT_SHAPE: VmShape = {
  vcpus: '1',
  memory: '256',
  disk: '1',
  driver: '',
  zone: '',
  strategy: '',
  workerLabels: '',
};

/** `k=v, k2=v2` → a record, or an error message. */
export function parseLabels(text: string): Record<string, string> | string {
  const out: Record<string, string> = {};
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const at = part.indexOf('=');
    if (at <= 0) return `“${part}” is not key=value`;
    out[part.slice(0, at).trim()] = part.slice(at + 1).trim();
  }
  return out;
}

/** The request fields of a shape (what a create and a plan share), or what is wrong with it. */
export function shapeRequest(
  shape: VmShape,
): (Required<Pick<PlanRequest, 'vcpus' | 'memory_mb' | 'disk_gb'>> & PlanRequest) | string {
  const workerLabels = parseLabels(shape.workerLabels);
  if (typeof workerLabels === 'string') return `Worker labels: ${workerLabels}`;
  return {
    vcpus: Number(shape.vcpus),
    memory_mb: Number(shape.memory),
    disk_gb: Number(shape.disk),
    ...(shape.driver ? { driver: shape.driver as DriverName } : {}),
    ...(shape.zone.trim() ? { zone: shape.zone.trim() } : {}),
    ...(Object.keys(workerLabels).length ? { worker_labels: workerLabels } : {}),
    ...(shape.strategy ? { strategy: shape.strategy as Strategy } : {}),
  };
}

export function VmShapeFields({
  shape,
  onChange,
}: {
  shape: VmShape;
  onChange: (key: keyof VmShape, value: string) => void;
}) {
  const fleet = useFleetOptions();
  const set = (key: keyof VmShape) => (e: { target: { value: string } }) => onChange(key, e.target.value);
  return (
    <>
      <Field label="vCPUs">
        <input className="input" type="number" min={1} max={256} required value={shape.vcpus} onChange={set('vcpus')} />
      </Field>
      <Field label="Memory (MiB)">
        <input
          className="input"
          type="number"
          min={16}
          max={1_048_576}
          required
          value={shape.memory}
          onChange={set('memory')}
        />
      </Field>
      <Field label="Disk (GB)">
        <input
          className="input"
          type="number"
          min={0}
          max={65_536}
          required
          value={shape.disk}
          onChange={set('disk')}
        />
      </Field>
      <Field label="Driver">
        <select className="input" value={shape.driver} onChange={set('driver')}>
          <option value="">Any the worker has</option>
          {fleet.drivers.map((d) => (
            <option key={d}>{d}</option>
          ))}
        </select>
      </Field>
      <Field label="Zone" hint="empty: any zone">
        <input className="input" list="fleet-zones" value={shape.zone} onChange={set('zone')} />
        <datalist id="fleet-zones">
          {fleet.zones.map((z) => (
            <option key={z} value={z} />
          ))}
        </datalist>
      </Field>
      <Field label="Strategy">
        <select className="input" value={shape.strategy} onChange={set('strategy')}>
          <option value="">The scheduler's default</option>
          {STRATEGIES.map((s) => (
            <option key={s}>{s}</option>
          ))}
        </select>
      </Field>
      <Field label="Worker labels" hint="only workers with these labels: gpu=true, pool=ci">
        <input className="input" value={shape.workerLabels} onChange={set('workerLabels')} />
      </Field>
    </>
  );
}
