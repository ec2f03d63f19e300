/** The small building blocks every page uses: cards, badges, errors, empty states, fields. */
import type { ReactNode } from 'react';
import { Link } from 'react-router';
import { messageOf } from '../api/session.tsx';

export function Spinner({ label }: { label: string }) {
  return (
    <div role="status" className="flex items-center gap-2 p-6 text-sm muted">
      <span className="size-4 animate-spin rounded-full border-2 border-slate-400 border-t-transparent" aria-hidden />
      {label}…
    </div>
  );
}

export function PageTitle({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="mb-4 flex flex-wrap items-center justify-between gap-3">
      <h1 className="text-xl font-semibold">{title}</h1>
      {children ? <div className="flex flex-wrap items-center gap-2">{children}</div> : null}
    </div>
  );
}

export function Card({
  title,
  children,
  actions,
  className = '',
}: {
  title?: string;
  children: ReactNode;
  actions?: ReactNode;
  className?: string;
}) {
  return (
    <section className={`card ${className}`} aria-label={title}>
      {title ? (
        <div className="mb-3 flex items-center justify-between gap-2">
          <h2 className="text-sm font-semibold">{title}</h2>
          {actions}
        </div>
      ) : null}
      {children}
    </section>
  );
}

const TONES: Record<string, string> = {
  green: 'bg-emerald-100 text-emerald-900 dark:bg-emerald-900/60 dark:text-emerald-100',
  amber: 'bg-amber-100 text-amber-900 dark:bg-amber-900/60 dark:text-amber-100',
  red: 'bg-red-100 text-red-900 dark:bg-red-900/60 dark:text-red-100',
  blue: 'bg-sky-100 text-sky-900 dark:bg-sky-900/60 dark:text-sky-100',
  gray: 'bg-slate-200 text-slate-800 dark:bg-slate-700 dark:text-slate-100',
};

const STATUS_TONE: Record<string, keyof typeof TONES> = {
  active: 'green',
  running: 'green',
  completed: 'green',
  draining: 'amber',
  pending: 'amber',
  scheduled: 'blue',
  starting: 'blue',
  created: 'blue',
  stopping: 'amber',
  stopped: 'gray',
  cancelled: 'gray',
  offline: 'red',
  failed: 'red',
  unknown: 'amber',
  lost: 'red',
  ineligible: 'amber',
};

export function Badge({ children, tone = 'gray' }: { children: ReactNode; tone?: keyof typeof TONES }) {
  return (
    <span className={`inline-flex items-center rounded px-1.5 py-0.5 text-xs font-medium ${TONES[tone]}`}>
      {children}
    </span>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return <Badge tone={STATUS_TONE[status] ?? 'gray'}>{status}</Badge>;
}

export function ErrorNote({ error, title = 'The request failed' }: { error: unknown; title?: string }) {
  if (!error) return null;
  const code = typeof error === 'object' && error && 'code' in error ? String(error.code) : null;
  return (
    <div
      role="alert"
      className="rounded-md border border-red-300 bg-red-50 p-3 text-sm text-red-900 dark:border-red-800 dark:bg-red-950 dark:text-red-100"
    >
      <strong className="font-semibold">{title}</strong>
      {code ? <span className="ml-1 font-mono text-xs">({code})</span> : null}: {messageOf(error)}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="py-6 text-center text-sm muted">{children}</p>;
}

export function Field({ label, children, hint }: { label: string; children: ReactNode; hint?: string }) {
  return (
    // biome-ignore lint/a11y/noLabelWithoutControl: the control is the child
    <label className="flex flex-col gap-1">
      <span className="label">{label}</span>
      {children}
      {hint ? <span className="text-xs muted">{hint}</span> : null}
    </label>
  );
}

export function KeyValues({ items }: { items: [string, ReactNode][] }) {
  return (
    <dl className="grid grid-cols-[max-content_1fr] gap-x-4 gap-y-1.5 text-sm">
      {items.map(([key, value]) => (
        <div key={key} className="contents">
          <dt className="muted">{key}</dt>
          <dd className="min-w-0 break-words">{value}</dd>
        </div>
      ))}
    </dl>
  );
}

/** A horizontal bar of how much of something is used. */
export function UsageBar({ used, label }: { used: number; label: string }) {
  const value = Math.max(0, Math.min(100, used));
  const tone = value >= 90 ? 'bg-red-600' : value >= 70 ? 'bg-amber-500' : 'bg-emerald-600';
  return (
    // biome-ignore lint/a11y/useSemanticElements: a styled bar; <meter> cannot be coloured alike in every browser
    <div
      role="meter"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(value)}
      className="h-2 w-full overflow-hidden rounded bg-slate-200 dark:bg-slate-700"
    >
      <div className={`h-full ${tone}`} style={{ width: `${value}%` }} />
    </div>
  );
}

/** A page whose subject could not be loaded (a wrong id, a refusal): what happened, and the way back. */
export function PageFailed({
  title,
  error,
  back,
}: {
  title: string;
  error: unknown;
  back: { to: string; label: string };
}) {
  return (
    <>
      <PageTitle title={title} />
      <ErrorNote error={error} />
      <p className="mt-4 text-sm">
        <Link to={back.to} className="link">
          ← {back.label}
        </Link>
      </p>
    </>
  );
}
