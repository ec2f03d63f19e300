/**
 * A VM's boot as a waterfall: each phase the control plane and the worker recorded, the time it
 * took from the one before, and a bar on the boot's timeline, so the slow step is the long bar.
 * The phases and what a long gap means are in docs/TROUBLESHOOTING.md ("Reading a boot waterfall").
 */
import { bootWaterfall, type VmData } from '@aetherium/sdk';
import { duration } from './format.ts';

const LABEL: Record<string, string> = {
  accepted: 'Accepted by the API',
  placed: 'Placed on a worker',
  delivered: 'Delivered to the worker',
  driver_started: 'Driver started the VM',
  agent_ready: 'Guest agent ready',
  running: 'Running',
};

export function BootWaterfall({ phases }: { phases: VmData['phases'] }) {
  const steps = bootWaterfall(phases ?? {});
  if (steps.length < 2) return null;
  const total = steps[steps.length - 1]!.since_start_ms;
  const pct = (ms: number) => (total > 0 ? (ms / total) * 100 : 0);
  return (
    <figure className="mt-4" data-testid="boot-waterfall">
      <figcaption className="mb-2 text-sm font-medium">
        Boot: {duration(total)} from accepted to {LABEL[steps[steps.length - 1]!.phase]?.toLowerCase()}
      </figcaption>
      <ol className="grid gap-1 text-xs">
        {steps.map((s, i) => (
          <li key={s.phase} className="grid grid-cols-[11rem_4.5rem_1fr] items-center gap-2" data-phase={s.phase}>
            <span title={s.at.toISOString()}>{LABEL[s.phase] ?? s.phase}</span>
            <span className="text-right tabular-nums muted" data-testid="step">
              {i === 0 ? '' : `+${duration(s.step_ms)}`}
            </span>
            <span className="relative h-3 rounded bg-slate-100 dark:bg-slate-800" aria-hidden>
              {i === 0 ? null : (
                <span
                  className="absolute inset-y-0 rounded bg-sky-600"
                  style={{
                    left: `${pct(s.since_start_ms - s.step_ms)}%`,
                    width: `max(2px, ${pct(s.step_ms)}%)`,
                  }}
                />
              )}
            </span>
          </li>
        ))}
      </ol>
    </figure>
  );
}
