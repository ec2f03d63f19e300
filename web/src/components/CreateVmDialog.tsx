/** Create a VM: its size, driver, image, zone and labels; then its page shows it boot. */
import { type DRIVER_NAMES, STRATEGIES, ValidationError } from '@aetherium/sdk';
import { type FormEvent, useState } from 'react';
import { useNavigate } from 'react-router';
import { useSession } from '../api/session.tsx';
import { useFleetOptions } from './fleet-options.ts';
import { Modal } from './Modal.tsx';
import { ErrorNote, Field } from './ui.tsx';

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

export function CreateVmDialog({ onClose }: { onClose: () => void }) {
  const { client } = useSession();
  const navigate = useNavigate();
  const [form, setForm] = useState({
    name: '',
    vcpus: '1',
    memory: '256',
    disk: '1',
    driver: '',
    image: '',
    zone: '',
    labels: '',
    workerLabels: '',
    strategy: '',
  });
  const fleet = useFleetOptions();
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const set = (key: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm({ ...form, [key]: e.target.value });

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const labels = parseLabels(form.labels);
    const workerLabels = parseLabels(form.workerLabels);
    if (typeof labels === 'string') return setError(new Error(`Labels: ${labels}`));
    if (typeof workerLabels === 'string') return setError(new Error(`Worker labels: ${workerLabels}`));
    setBusy(true);
    setError(null);
    try {
      const vm = await client.vms.create(
        {
          ...(form.name.trim() ? { name: form.name.trim() } : {}),
          vcpus: Number(form.vcpus),
          memory_mb: Number(form.memory),
          disk_gb: Number(form.disk),
          ...(form.driver ? { driver: form.driver as (typeof DRIVER_NAMES)[number] } : {}),
          ...(form.image.trim() ? { image: form.image.trim() } : {}),
          ...(form.zone.trim() ? { zone: form.zone.trim() } : {}),
          ...(Object.keys(labels).length ? { labels } : {}),
          ...(Object.keys(workerLabels).length ? { worker_labels: workerLabels } : {}),
          ...(form.strategy ? { strategy: form.strategy as (typeof STRATEGIES)[number] } : {}),
        },
        { waitUntil: 'created' },
      );
      onClose();
      navigate(`/vms/${vm.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };

  const issues = error instanceof ValidationError ? error.fields : [];
  return (
    <Modal title="Create a VM" onClose={onClose} wide>
      <form onSubmit={submit} className="space-y-4">
        <div className="grid gap-3 sm:grid-cols-2">
          <Field label="Name" hint="lowercase letters, digits and -; empty: one is made up">
            <input
              className="input"
              value={form.name}
              onChange={set('name')}
              pattern="[a-z0-9]([a-z0-9\-]{0,61}[a-z0-9])?"
            />
          </Field>
          <Field label="Driver">
            <select className="input" value={form.driver} onChange={set('driver')}>
              <option value="">Any the worker has</option>
              {fleet.drivers.map((d) => (
                <option key={d}>{d}</option>
              ))}
            </select>
          </Field>
          <Field label="vCPUs">
            <input
              className="input"
              type="number"
              min={1}
              max={256}
              required
              value={form.vcpus}
              onChange={set('vcpus')}
            />
          </Field>
          <Field label="Memory (MiB)">
            <input
              className="input"
              type="number"
              min={16}
              max={1_048_576}
              required
              value={form.memory}
              onChange={set('memory')}
            />
          </Field>
          <Field label="Disk (GB)">
            <input className="input" type="number" min={0} required value={form.disk} onChange={set('disk')} />
          </Field>
          <Field label="Image" hint="empty: the driver's default">
            <input className="input" value={form.image} onChange={set('image')} />
          </Field>
          <Field label="Zone" hint="empty: any zone">
            <input className="input" list="fleet-zones" value={form.zone} onChange={set('zone')} />
            <datalist id="fleet-zones">
              {fleet.zones.map((z) => (
                <option key={z} value={z} />
              ))}
            </datalist>
          </Field>
          <Field label="Strategy">
            <select className="input" value={form.strategy} onChange={set('strategy')}>
              <option value="">The scheduler's default</option>
              {STRATEGIES.map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </Field>
          <Field label="Labels" hint="team=ci, purpose=agent">
            <input className="input" value={form.labels} onChange={set('labels')} />
          </Field>
          <Field label="Worker labels" hint="only workers with these labels">
            <input className="input" value={form.workerLabels} onChange={set('workerLabels')} />
          </Field>
        </div>
        {error && issues.length === 0 ? <ErrorNote error={error} title="The VM was not created" /> : null}
        {issues.length ? (
          <ul
            role="alert"
            aria-label="The VM was not created"
            className="list-disc rounded-md border border-red-300 bg-red-50 py-2 pr-2 pl-7 text-sm text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100"
          >
            {issues.map((i) => (
              <li key={`${i.field}${i.message}`}>
                <code className="font-mono">{i.field || '(request)'}</code>: {i.message}
              </li>
            ))}
          </ul>
        ) : null}
        <div className="flex justify-end gap-2">
          <button type="button" className="btn" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="btn btn-primary" disabled={busy}>
            {busy ? 'Creating…' : 'Create VM'}
          </button>
        </div>
      </form>
    </Modal>
  );
}
