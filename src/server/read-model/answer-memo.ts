/**
 * Answers derived from one worker snapshot (the statistics, a filtered list), made once and handed
 * to every request that asks the same thing while both hold: the snapshot is the same version and
 * the answer is younger than MEMO_MS. The age bound matters because answers also depend on the
 * clock (health from `last_seen`, uptime): a worker's health turns at most MEMO_MS late.
 *
 * The same object is returned each time, so the route's serializer can keep its JSON too
 * (memoized-serializer.ts). Callers must not change what they are given.
 */
export const MEMO_MS = 250;

/** Distinct questions kept per snapshot: query strings are the caller's, so the count is capped. */
const MAX_KEYS = 64;

export class AnswerMemo {
  private version = -1;
  private readonly answers = new Map<string, { madeAt: number; value: unknown }>();

  constructor(
    private readonly maxAgeMs = MEMO_MS,
    private readonly now: () => number = Date.now,
  ) {}

  get<T>(version: number, key: string, make: (now: number) => T): T {
    const now = this.now();
    if (version !== this.version) {
      this.version = version;
      this.answers.clear();
    }
    const held = this.answers.get(key);
    if (held && now - held.madeAt < this.maxAgeMs) return held.value as T;
    const value = make(now);
    if (this.answers.size >= MAX_KEYS && !held) this.answers.clear();
    this.answers.set(key, { madeAt: now, value });
    return value;
  }
}
