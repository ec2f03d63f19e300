/** Drain deadlines as people say them: presets, or a custom `90m`, `2h30m`, `1d`. */
export const DRAIN_PRESETS = [
  { id: '1h', label: '1 hour', seconds: 3600 },
  { id: '4h', label: '4 hours', seconds: 4 * 3600 },
  { id: '8h', label: '8 hours', seconds: 8 * 3600 },
  { id: '12h', label: '12 hours', seconds: 12 * 3600 },
  { id: '1d', label: '1 day', seconds: 86_400 },
] as const;

export const MAX_DRAIN_SECONDS = 7 * 86_400;

const UNIT: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

/** Seconds, or an error message. */
export function parseDeadline(text: string): number | string {
  const trimmed = text.trim().toLowerCase();
  if (!trimmed) return 'Enter a deadline, like 90m or 2h30m.';
  const parts = [...trimmed.matchAll(/(\d+)\s*([smhd])/g)];
  if (parts.map((p) => p[0]).join('') !== trimmed.replace(/\s+/g, '') || parts.length === 0)
    return 'A deadline is a number and a unit (s, m, h, d), like 90m or 2h30m.';
  const seconds = parts.reduce((sum, [, n, unit]) => sum + Number(n) * UNIT[unit!]!, 0);
  if (seconds < 1) return 'The deadline must be at least 1 second.';
  if (seconds > MAX_DRAIN_SECONDS) return 'The deadline can be at most 7 days.';
  return seconds;
}

export type DrainChoice =
  | { kind: 'preset'; seconds: number }
  | { kind: 'custom'; text: string }
  | { kind: 'none' }
  | { kind: 'force' };

export function drainBody(
  choice: DrainChoice,
  message: string,
):
  | { deadline_seconds: number; message?: string }
  | { no_deadline: true; message?: string }
  | { force: true; message?: string }
  | string {
  const extra = message.trim() ? { message: message.trim() } : {};
  switch (choice.kind) {
    case 'preset':
      return { deadline_seconds: choice.seconds, ...extra };
    case 'custom': {
      const seconds = parseDeadline(choice.text);
      return typeof seconds === 'string' ? seconds : { deadline_seconds: seconds, ...extra };
    }
    case 'none':
      return { no_deadline: true, ...extra };
    case 'force':
      return { force: true, ...extra };
  }
}
