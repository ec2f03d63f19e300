/** What an admin can do to a worker: drain it, end a drain, turn placements on it off or on. */
import type { Worker } from '@aetherium/sdk';
import { useMutation, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { keys } from '../api/keys.ts';
import { useSession } from '../api/session.tsx';
import { DrainDialog } from './DrainDialog.tsx';
import { ErrorNote } from './ui.tsx';

export function WorkerActions({ worker }: { worker: Worker }) {
  const { client, can } = useSession();
  const queryClient = useQueryClient();
  const [draining, setDraining] = useState(false);
  const settle = (data: { worker: Worker }) => {
    queryClient.setQueryData(keys.worker(worker.id), data.worker);
    void queryClient.invalidateQueries({ queryKey: ['workers'] });
  };
  const activate = useMutation({ mutationFn: () => client.workers.activate(worker.id), onSuccess: settle });
  const eligibility = useMutation({
    mutationFn: (eligible: boolean) => client.workers.setEligibility(worker.id, eligible),
    onSuccess: settle,
  });
  if (!can('admin')) return null;
  const offline = worker.status === 'offline';
  return (
    <div className="flex flex-col items-end gap-2">
      <div className="flex flex-wrap gap-2">
        {worker.status === 'draining' || !worker.eligible ? (
          <button type="button" className="btn" disabled={activate.isPending} onClick={() => activate.mutate()}>
            {worker.status === 'draining' ? 'Stop drain and activate' : 'Activate'}
          </button>
        ) : null}
        {worker.status === 'active' ? (
          <button
            type="button"
            className="btn"
            disabled={eligibility.isPending}
            onClick={() => eligibility.mutate(!worker.eligible)}
          >
            {worker.eligible ? 'Mark ineligible' : 'Mark eligible'}
          </button>
        ) : null}
        <button
          type="button"
          className="btn btn-primary"
          disabled={offline || worker.status === 'draining'}
          onClick={() => setDraining(true)}
        >
          Drain
        </button>
      </div>
      <ErrorNote error={activate.error ?? eligibility.error} />
      {draining ? <DrainDialog workers={[worker]} onClose={() => setDraining(false)} /> : null}
    </div>
  );
}
