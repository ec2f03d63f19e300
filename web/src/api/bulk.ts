import { messageOf } from './session.tsx';

/** How many requests a bulk action keeps in flight: enough to be quick, few enough for the rate limit. */
const CONCURRENCY = 8;

/**
 * Runs `each` over the items, a few at a time; `settled` hears of each as it ends (its error, or
 * null). Answers the failures. One failure never stops the rest.
 */
export async function runBounded<T>(
  items: readonly T[],
  each: (item: T) => Promise<unknown>,
  settled: (item: T, error: string | null, done: number) => void = () => undefined,
): Promise<{ item: T; error: string }[]> {
  const queue = [...items];
  const failures: { item: T; error: string }[] = [];
  let done = 0;
  await Promise.all(
    Array.from({ length: Math.min(CONCURRENCY, queue.length) }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        let error: string | null = null;
        try {
          await each(item);
        } catch (err) {
          error = messageOf(err);
          failures.push({ item, error });
        }
        settled(item, error, ++done);
      }
    }),
  );
  return failures;
}
