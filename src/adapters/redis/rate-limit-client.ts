/**
 * The Redis connection the API's rate limits count in, so that every control-plane replica counts
 * one caller's requests together. It fails fast rather than queueing while Redis is away: the rate
 * limiter then lets requests through instead of holding them.
 */
import type { Redis } from 'ioredis';
import { closeClient, createRedis, reconnectDelayMs, type RedisEndpoint } from './redis-connection.ts';

export function openRateLimitRedis(
  endpoint: RedisEndpoint,
  onError: (err: unknown) => void,
): { client: Redis; close(): Promise<void> } {
  const client = createRedis(endpoint, {
    maxRetriesPerRequest: 1,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: reconnectDelayMs,
    // Requests arriving together share one round trip.
    enableAutoPipelining: true,
  });
  client.on('error', onError);
  return { client, close: () => closeClient(client) };
}
