/** A ring gauge of a percentage, drawn in SVG: the dashboard shows it before any chart library loads. */
import { pct } from './format.ts';

export function Gauge({ value, label, detail }: { value: number; label: string; detail: string }) {
  const v = Math.max(0, Math.min(100, value));
  const r = 42;
  const c = 2 * Math.PI * r;
  const tone = v >= 90 ? 'stroke-red-600' : v >= 70 ? 'stroke-amber-500' : 'stroke-emerald-600';
  return (
    <figure className="flex flex-col items-center gap-1" aria-label={`${label}: ${pct(v)} used`}>
      <svg viewBox="0 0 100 100" className="size-28" role="img" aria-hidden>
        <circle cx="50" cy="50" r={r} className="fill-none stroke-slate-200 dark:stroke-slate-700" strokeWidth="10" />
        <circle
          cx="50"
          cy="50"
          r={r}
          className={`fill-none ${tone} transition-[stroke-dashoffset] duration-500`}
          strokeWidth="10"
          strokeDasharray={c}
          strokeDashoffset={c * (1 - v / 100)}
          strokeLinecap="round"
          transform="rotate(-90 50 50)"
        />
        <text x="50" y="55" textAnchor="middle" className="fill-current text-lg font-semibold">
          {pct(v)}
        </text>
      </svg>
      <figcaption className="text-center text-sm">
        <span className="font-medium">{label}</span>
        <span className="block text-xs muted">{detail}</span>
      </figcaption>
    </figure>
  );
}
