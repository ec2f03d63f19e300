/**
 * The Redis connection the API's rate limits count in, so that every control-plane replica counts
 * one caller's requests together. It fails fast rather than queueing while Redis is away: the rate
 * limiter then lets requests through instead of holding them.
 */
import { Redis } from 'ioredis';
import { closeClient, reconnectDelayMs } from './redis-connection.ts';

export function openRateLimitRedis(
  url: string,
  onError: (err: unknown) => void,
): { client: Redis; close(): Promise<void> } {
  const client = new Redis(url, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: reconnectDelayMs,
  });
  client.on('error', onError);
  return { client, close: () => closeClient(client) };
}
