/**
 * What-if: where would a VM of this shape go now, or why would it wait? The scheduler's dry run
 * (`POST /schedule/plan`) reserves nothing.
 */
import type { PlanRequest } from '@aetherium/sdk';
import { useMutation } from '@tanstack/react-query';
import { type FormEvent, useState } from 'react';
import { useSession } from '../api/session.tsx';
import { PlacementView } from '../components/PlacementView.tsx';
import { Card, ErrorNote, PageTitle } from '../components/ui.tsx';
import { DEFAULT_SHAPE, shapeRequest, type VmShape, VmShapeFields } from '../components/VmShapeFields.tsx';

export default function Plan() {
  const { client } = useSession();
  const [shape, setShape] = useState<VmShape>(DEFAULT_SHAPE);
  const [inputError, setInputError] = useState<string | null>(null);
  const plan = useMutation({ mutationFn: (request: PlanRequest) => client.schedule.plan(request) });

  const submit = (e: FormEvent) => {
    e.preventDefault();
    const request = shapeRequest(shape);
    if (typeof request === 'string') return setInputError(request);
    setInputError(null);
    plan.mutate(request);
  };

  return (
    <>
      <PageTitle title="What-if: where would it go?" />
      <div className="grid gap-4 lg:grid-cols-2">
        <Card title="A VM of this shape">
          <form onSubmit={submit} className="grid gap-3 sm:grid-cols-2">
            <VmShapeFields
              shape={shape}
              onChange={(key, value) => {
                setShape({ ...shape, [key]: value });
                // A changed question makes the last answer stale: it goes until the scheduler is asked again.
                plan.reset();
              }}
            />
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
