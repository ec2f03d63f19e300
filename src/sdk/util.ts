/** Small helpers shared by the SDK's resources. */

/** Resolves after `ms`, or at once when `signal` fires (the caller checks `signal.aborted`). */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });
}

/**
 * A loosened query (booleans for the wire's 'true' | 'false', numbers and Dates for coerced fields,
 * see `Loosen` in types.ts) as the route's query input: the caller writes each value as text.
 */
export function wire<T extends object>(query: T): never {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    out[key] = typeof value === 'boolean' ? String(value) : value;
  }
  return out as never;
}

/** Lets a timer not keep a Node process alive; a browser's timers are plain numbers. */
export function unrefTimer(timer: ReturnType<typeof setTimeout>): void {
  if (typeof timer === 'object' && timer !== null && 'unref' in timer) timer.unref();
}
