/**
 * Drain one worker or many: a deadline (presets, custom, none) or force, a message for the audit
 * log, then a second step that says exactly what will happen before anything does.
 */
import type { Worker } from '@aetherium/sdk';
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { runBounded } from '../api/bulk.ts';
import { useSession } from '../api/session.tsx';
import { DRAIN_PRESETS, type DrainChoice, drainBody } from './drain.ts';
import { duration } from './format.ts';
import { Modal } from './Modal.tsx';
import { ErrorNote } from './ui.tsx';

type Outcome = { id: string; ok: true } | { id: string; ok: false; error: string };

function describe(choice: DrainChoice, text: string | null): string {
  switch (choice.kind) {
    case 'preset':
      return `stop placing VMs on it; VMs still there in ${duration(choice.seconds * 1000)} are deleted`;
    case 'custom':
      return `stop placing VMs on it; VMs still there after ${text} are deleted`;
    case 'none':
      return 'stop placing VMs on it; its VMs run until they are deleted';
    case 'force':
      return 'delete every VM on it now';
  }
}

export function DrainDialog({ workers, onClose }: { workers: readonly Worker[]; onClose: () => void }) {
  const { client } = useSession();
  const queryClient = useQueryClient();
  const [choice, setChoice] = useState<DrainChoice>({ kind: 'preset', seconds: 3600 });
  const [custom, setCustom] = useState('2h');
  const [message, setMessage] = useState('');
  const [step, setStep] = useState<'choose' | 'confirm' | 'running' | 'done'>('choose');
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const effective: DrainChoice = choice.kind === 'custom' ? { kind: 'custom', text: custom } : choice;
  const body = drainBody(effective, message);
  const vms = workers.reduce((n, w) => n + w.vm_count, 0);
  const name = workers.length === 1 ? `worker ${workers[0]!.id}` : `${workers.length} workers`;

  const run = async () => {
    if (typeof body === 'string') return;
    setStep('running');
    const results: Outcome[] = [];
    await runBounded(
      workers,
      (w) => client.workers.drain(w.id, body),
      (w, error) => {
        results.push(error === null ? { id: w.id, ok: true } : { id: w.id, ok: false, error });
        setOutcomes([...results]);
      },
    );
    await queryClient.invalidateQueries({ queryKey: ['workers'] });
    await queryClient.invalidateQueries({ queryKey: ['worker'] });
    setStep('done');
  };

  const failed = outcomes.filter((o) => !o.ok);
  return (
    <Modal title={`Drain ${name}`} onClose={onClose}>
      {step === 'choose' ? (
        <form
          className="space-y-4"
          onSubmit={(e) => {
            e.preventDefault();
            if (typeof body !== 'string') setStep('confirm');
          }}
        >
          <fieldset className="space-y-1.5">
            <legend className="label mb-1">Deadline</legend>
            {DRAIN_PRESETS.map((p) => (
              <label key={p.id} className="flex items-center gap-2 text-sm">
                <input
                  type="radio"
                  name="deadline"
                  checked={choice.kind === 'preset' && choice.seconds === p.seconds}
                  onChange={() => setChoice({ kind: 'preset', seconds: p.seconds })}
                />
                {p.label}
              </label>
            ))}
            <label className="flex items-center gap-2 text-sm">
              <input
                type="radio"
                name="deadline"
                checked={choice.kind === 'custom'}
                onChange={() => setChoice({ kind: 'custom', text: custom })}
              />
              Custom
              <input
                className="input w-28 py-0.5"
                aria-label="Custom deadline"
                value={custom}
                onFocus={() => setChoice({ kind: 'custom', text: custom })}
                onChange={(e) => setCustom(e.target.value)}
              />
            </label>
            <label className="flex items-center gap-2 text-sm">
              <input
                type="radio"
                name="deadline"
                checked={choice.kind === 'none'}
                onChange={() => setChoice({ kind: 'none' })}
              />
              No deadline (wait for every VM to go)
            </label>
            <label className="flex items-center gap-2 text-sm">
              <input
                type="radio"
                name="deadline"
                checked={choice.kind === 'force'}
                onChange={() => setChoice({ kind: 'force' })}
              />
              Force: delete its VMs now
            </label>
          </fieldset>
          <label className="flex flex-col gap-1">
            <span className="label">Message (kept in the audit log)</span>
            <input
              className="input"
              value={message}
              maxLength={1024}
              onChange={(e) => setMessage(e.target.value)}
              placeholder="kernel upgrade"
            />
          </label>
          {typeof body === 'string' ? <ErrorNote error={new Error(body)} title="Invalid deadline" /> : null}
          <div className="flex justify-end gap-2">
            <button type="button" className="btn" onClick={onClose}>
              Cancel
            </button>
            <button type="submit" className="btn btn-primary" disabled={typeof body === 'string'}>
              Drain…
            </button>
          </div>
        </form>
      ) : null}
      {step === 'confirm' ? (
        <div className="space-y-4">
          <p className="text-sm">
            Drain <strong>{name}</strong>: {describe(effective, custom)}. {vms === 1 ? '1 VM runs' : `${vms} VMs run`}{' '}
            there now.
          </p>
          {workers.length > 1 ? (
            <ul className="max-h-40 overflow-auto rounded border border-slate-200 p-2 font-mono text-xs dark:border-slate-700">
              {workers.map((w) => (
                <li key={w.id}>
                  {w.id} ({w.vm_count} VMs)
                </li>
              ))}
            </ul>
          ) : null}
          <div className="flex justify-end gap-2">
            <button type="button" className="btn" onClick={() => setStep('choose')}>
              Back
            </button>
            <button
              type="button"
              className={`btn ${effective.kind === 'force' ? 'btn-danger' : 'btn-primary'}`}
              onClick={run}
            >
              Confirm drain
            </button>
          </div>
        </div>
      ) : null}
      {step === 'running' || step === 'done' ? (
        <div className="space-y-3" aria-live="polite">
          <p className="text-sm" role="status">
            {step === 'running' ? 'Draining' : 'Done'}: {outcomes.length} of {workers.length}
            {failed.length ? `, ${failed.length} failed` : ''}.
          </p>
          {failed.map((f) => (
            <ErrorNote key={f.id} error={new Error(f.error)} title={f.id} />
          ))}
          <div className="flex justify-end">
            <button type="button" className="btn" onClick={onClose} disabled={step === 'running'}>
              Close
            </button>
          </div>
        </div>
      ) : null}
    </Modal>
  );
}
