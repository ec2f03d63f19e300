/**
 * A Chart.js chart that loads the library on first use and updates in place when its data
 * changes (no new chart per render, no animation for live data). Its text alternative is a
 * summary the page gives, for screen readers.
 */
import type { ChartConfiguration } from 'chart.js';
import { useEffect, useRef } from 'react';

type Chart = import('chart.js').Chart;

export function ChartCanvas({
  config,
  summary,
  height = 220,
}: {
  config: ChartConfiguration;
  summary: string;
  height?: number;
}) {
  const canvas = useRef<HTMLCanvasElement>(null);
  const chart = useRef<Chart | null>(null);
  const latest = useRef(config);
  latest.current = config;

  useEffect(() => {
    let cancelled = false;
    void import('./chart-setup.ts').then(({ Chart }) => {
      if (cancelled || !canvas.current) return;
      chart.current = new Chart(canvas.current, themed(latest.current));
    });
    return () => {
      cancelled = true;
      chart.current?.destroy();
      chart.current = null;
    };
  }, []);

  useEffect(() => {
    const c = chart.current;
    if (!c) return;
    const next = themed(config);
    c.data = next.data;
    c.options = next.options ?? {};
    c.update('none');
  }, [config]);

  return (
    <div style={{ height }} className="relative">
      <canvas ref={canvas} role="img" aria-label={summary} />
    </div>
  );
}

function themed(config: ChartConfiguration): ChartConfiguration {
  const dark = document.documentElement.classList.contains('dark');
  const text = dark ? '#cbd5e1' : '#475569';
  const grid = dark ? 'rgba(148,163,184,0.2)' : 'rgba(100,116,139,0.2)';
  const scales = Object.fromEntries(
    Object.entries(config.options?.scales ?? {}).map(([k, v]) => [
      k,
      { ...v, ticks: { color: text, ...(v?.ticks ?? {}) }, grid: { color: grid, ...(v?.grid ?? {}) } },
    ]),
  );
  return {
    ...config,
    options: {
      responsive: true,
      maintainAspectRatio: false,
      animation: false,
      ...config.options,
      scales,
      plugins: { legend: { labels: { color: text } }, ...config.options?.plugins },
    },
  } as ChartConfiguration;
}
