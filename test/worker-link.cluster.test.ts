/**
 * The WorkerLink conformance suite against DirectWorkerLink on the cluster engines: a real Postgres
 * and a real Redis (BullMQ queue, Redis event bus), started by the harness. Each test opens its
 * engines on a fresh database; the Redis is shared, and the suite's random worker ids keep the
 * tests' queues and events apart.
 */
import { afterAll, beforeAll } from 'vitest';
import { loadConfig } from '../src/config/load.ts';
import { openEngines } from '../src/runtime/engines.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { linkOverEngines } from '../src/runtime/worker-link.ts';
import { workerLinkConformance } from './conformance/worker-link.suite.ts';
import { createDatabase, startPostgres, type PostgresServer } from './harness/postgres.ts';
import { startRedis, type RedisServer } from './harness/redis.ts';

let postgres: PostgresServer | undefined;
let redis: RedisServer | undefined;

beforeAll(async () => {
  postgres = await startPostgres();
  redis = await startRedis();
}, 120_000);

afterAll(async () => {
  await redis?.stop();
  await postgres?.stop();
}, 60_000);

workerLinkConformance('direct, cluster (Postgres, BullMQ, Redis event bus)', async () => {
  if (!postgres || !redis) throw new Error('Postgres or Redis did not start');
  const url = await createDatabase(postgres.url);
  const config = loadConfig({
    env: {},
    overrides: {
      store: { kind: 'postgres', postgres: { url } },
      queue: { kind: 'redis', redis: { url: redis.url } },
      events: { kind: 'redis', redis: { url: redis.url } },
      discovery: { provider: 'builtin' },
      log: { level: 'silent' },
    },
  });
  const engines = await openEngines(config, silentLogger);
  return {
    link: linkOverEngines(engines, silentLogger),
    store: engines.store,
    events: engines.events,
    close: () => engines.close(),
  };
});
