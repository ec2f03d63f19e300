/**
 * Everything a run starts is stopped by the scope that started it, last first: on success, on a
 * failure, on a scenario that overran its time, and on Ctrl-C (see load.ts). A stop that fails is
 * reported and the others still run, so one stuck engine never leaves the rest behind.
 */
export class Scope {
  private readonly stops: { what: string; stop: () => Promise<void> | void }[] = [];
  private closing: Promise<void> | null = null;

  constructor(readonly name: string) {}

  /** Registers how to stop something just started; `what` names it in a failure. */
  defer(what: string, stop: () => Promise<void> | void): void {
    if (this.closing) {
      // Started after the scope closed (a scenario that overran): stop it at once.
      void Promise.resolve()
        .then(stop)
        .catch(() => undefined);
      return;
    }
    this.stops.push({ what, stop });
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      for (const { what, stop } of this.stops.splice(0).reverse()) {
        try {
          await withTimeout(Promise.resolve().then(stop), 30_000, `stopping ${what}`);
        } catch (err) {
          process.stderr.write(`[${this.name}] stopping ${what} failed: ${(err as Error).message}\n`);
        }
      }
    })();
    return this.closing;
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${Math.round(ms / 1000)} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
