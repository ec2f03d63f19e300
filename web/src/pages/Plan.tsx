/**
 * What-if: where would a VM of this shape go now, or why would it wait? The scheduler's dry run
 * (`POST /schedule/plan`) reserves nothing.
 */
import { type DRIVER_NAMES, type PlanRequest, STRATEGIES } from '@aetherium/sdk';
import { useMutation } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useSession } from '../api/session.tsx';
import { useFleetOptions } from '../components/fleet-options.ts';
import { parseLabels } from '../components/CreateVmDialog.tsx';
import { PlacementView } from '../components/PlacementView.tsx';
import { Card, ErrorNote, Field, PageTitle } from '../components/ui.tsx';

export default function Plan() {
  const { client } = useSession();
  const [form, setForm] = useState({
    vcpus: '1',
    memory: '256',
    disk: '1',
    driver: '',
    zone: '',
    workerLabels: '',
    strategy: '',
  });
  const [inputError, setInputError] = useState<string | null>(null);
  const fleet = useFleetOptions();
  const plan = useMutation({ mutationFn: (request: PlanRequest) => client.schedule.plan(request) });
  // A changed question makes the last answer stale: it goes until the scheduler is asked again.
  const set = (key: keyof typeof form) => (e: { target: { value: string } }) => {
    setForm({ ...form, [key]: e.target.value });
    plan.reset();
  };

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const labels = parseLabels(form.workerLabels);
    if (typeof labels === 'string') return setInputError(`Worker labels: ${labels}`);
    setInputError(null);
    plan.mutate({
      vcpus: Number(form.vcpus),
      memory_mb: Number(form.memory),
      disk_gb: Number(form.disk),
      ...(form.driver ? { driver: form.driver as (typeof DRIVER_NAMES)[number] } : {}),
      ...(form.zone.trim() ? { zone: form.zone.trim() } : {}),
      ...(Object.keys(labels).length ? { worker_labels: labels } : {}),
      ...(form.strategy ? { strategy: form.strategy as (typeof STRATEGIES)[number] } : {}),
    });
  };

  return (
    <>
      <PageTitle title="What-if: where would it go?" />
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="A VM of this shape">
          <form onSubmit={submit} className="grid gap-3 sm:grid-cols-2">
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
            <Field label="Driver">
              <select className="input" value={form.driver} onChange={set('driver')}>
                <option value="">Any</option>
                {fleet.drivers.map((d) => (
                  <option key={d}>{d}</option>
                ))}
              </select>
            </Field>
            <Field label="Zone">
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
            <Field label="Worker labels" hint="gpu=true, pool=ci">
              <input className="input" value={form.workerLabels} onChange={set('workerLabels')} />
            </Field>
            <div className="flex items-end">
              <button type="submit" className="btn btn-primary" disabled={plan.isPending}>
                Ask the scheduler
              </button>
            </div>
          </form>
        </Card>
        <Card title="The scheduler's answer">
          {inputError ? <ErrorNote error={new Error(inputError)} title="Check the form" /> : null}
          <ErrorNote error={plan.error} />
          {plan.data ? (
            <div className="space-y-3">
              <p className="text-sm font-medium" data-testid="plan-verdict">
                {plan.data.placement
                  ? `It would go to ${plan.data.placement.worker_id} (${plan.data.placement.driver}).`
                  : 'It would wait: no worker fits now.'}
              </p>
              <PlacementView explanation={plan.data.explanation} />
            </div>
          ) : (
            <p className="text-sm muted">Nothing is reserved: this only asks.</p>
          )}
        </Card>
      </div>
    </>
  );
}
