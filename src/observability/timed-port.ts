/**
 * Times every asynchronous call on a port (a store, a queue, a link): the duration by operation,
 * and the failures. One wrapper for every engine, so that no adapter carries metrics code and an
 * operation's label is always its method's name. Calls go to the target itself (not through the
 * proxy), so private fields and `this` work as they did.
 */
export type CallObserver = (operation: string, seconds: number, failed: boolean) => void;

export function timedPort<T extends object>(
  target: T,
  observe: CallObserver,
  skip: ReadonlySet<string> = new Set(),
): T {
  // Keyed by the function, not its name: a method replaced on the target is the one called.
  const wrapped = new WeakMap<object, unknown>();
  return new Proxy(target, {
    get(obj, prop) {
      const value = Reflect.get(obj, prop, obj);
      if (typeof value !== 'function' || typeof prop !== 'string' || skip.has(prop) || prop === 'constructor')
        return value;
      let fn = wrapped.get(value);
      if (!fn) {
        fn = (...args: unknown[]) => {
          const started = performance.now();
          const result = (value as (...a: unknown[]) => unknown).apply(obj, args);
          if (!isThenable(result)) return result;
          return result.then(
            (answer) => {
              observe(prop, (performance.now() - started) / 1000, false);
              return answer;
            },
            (err: unknown) => {
              observe(prop, (performance.now() - started) / 1000, true);
              throw err;
            },
          );
        };
        wrapped.set(value, fn);
      }
      return fn;
    },
  });
}

function isThenable(value: unknown): value is Promise<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
