/**
 * Connection habits shared by every Redis adapter (queue, event bus, exec channels): reconnect
 * forever with a capped backoff, fail calls fast while Redis is away, close politely.
 */
import type { Redis } from 'ioredis';

/** How long a call waits for a connection that is down before it fails. */
export const READY_WAIT_MS = 2000;

/** Reconnect forever: 100, 200, 400, 800, 1600, then every 2000 ms. */
export function reconnectDelayMs(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000);
}

/**
 * Resolves when the connection is up, waiting at most `timeoutMs`: while Redis is down a call fails
 * within about two seconds, and a short blip (a restart, a failover) does not fail it.
 */
export function whenReady(client: Redis, timeoutMs = READY_WAIT_MS): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(new Error('the redis connection is closed'));
  return new Promise((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      reject(new Error(`redis is unreachable (connection ${client.status} for ${timeoutMs} ms)`));
    }, timeoutMs);
    client.once('ready', onReady);
  });
}

/** QUIT when connected (replies still due arrive first), else just drop the connection. */
export async function closeClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([client.quit(), new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
  } catch {
    // closing anyway
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
