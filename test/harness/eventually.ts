/** Retries an assertion until it passes or the time is up; then the last failure is thrown. */
export async function eventuallyPasses(
  check: () => void | Promise<void>,
  timeoutMs: number,
  stepMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await check();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((resolve) => setTimeout(resolve, stepMs));
    }
  }
}
