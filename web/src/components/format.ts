/** How numbers, sizes and times read on every page. */
export function mb(value: number): string {
  if (value >= 1024 * 1024) return `${(value / 1024 / 1024).toFixed(1)} TiB`;
  if (value >= 1024) return `${(value / 1024).toFixed(value >= 10 * 1024 ? 0 : 1)} GiB`;
  return `${Math.round(value)} MiB`;
}

export function cores(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(1);
}

export function pct(value: number): string {
  return `${value >= 10 || value === 0 ? Math.round(value) : value.toFixed(1)}%`;
}

const units: [number, string][] = [
  [86_400_000, 'd'],
  [3_600_000, 'h'],
  [60_000, 'm'],
  [1000, 's'],
];

export function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const parts: string[] = [];
  let left = ms;
  for (const [size, unit] of units) {
    if (left >= size && parts.length < 2) {
      parts.push(`${Math.floor(left / size)}${unit}`);
      left %= size;
    }
  }
  return parts.join(' ');
}

export type When = Date | string | null | undefined;

export function ago(iso: When, now = Date.now()): string {
  if (!iso) return '—';
  const ms = now - new Date(iso).getTime();
  if (ms < 0) return `in ${duration(-ms)}`;
  if (ms < 5000) return 'just now';
  return `${duration(ms)} ago`;
}

export function time(iso: When): string {
  if (!iso) return '—';
  return new Date(iso).toLocaleString();
}

export function shortId(id: string | null | undefined): string {
  if (!id) return '—';
  return id.length > 14 ? `${id.slice(0, 12)}…` : id;
}

/** `1 worker`, `2 workers`; `irregular` for the plural when it is not the noun and an s. */
export function count(n: number, noun: string, irregular?: string): string {
  return `${n} ${n === 1 ? noun : (irregular ?? `${noun}s`)}`;
}
