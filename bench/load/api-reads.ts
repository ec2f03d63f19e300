/**
 * d. API reads: `GET /cluster/stats`, `/workers` and `/vms` in requests per second against a bare
 * Fastify hello-world measured in the same run, with autocannon. The measuring is
 * bench/api-reads.ts's (`npm run bench:api`), in its cluster mode: `aetherium server` on a
 * Postgres and Redis of its own, with worker rows and VMs seeded. This only puts its rows in the
 * suite's tables.
 * Environment: LOAD_API_SECONDS (3 per route), LOAD_API_CONNECTIONS (10).
 */
import { measureApiReads } from '../api-reads.ts';
import { envNumber, type Scenario } from './scenario.ts';

const TARGET_RATIO = 0.5;

export const apiReads: Scenario = {
  name: 'api-reads',
  title: 'd. API reads against a bare Fastify',
  budgetMs: 120_000,
  async run({ log }) {
    const seconds = envNumber('LOAD_API_SECONDS', 3);
    const connections = envNumber('LOAD_API_CONNECTIONS', 10);
    const rows = await measureApiReads({ modes: ['cluster'], seconds, connections, log });
    return {
      tables: [
        {
          title: `autocannon, ${connections} connections, ${seconds} s per target (bench/api-reads.ts, cluster mode)`,
          table: {
            headers: ['target', 'req/s', 'p50 (ms)', 'p99 (ms)', 'ratio to bare', 'failed'],
            rows: rows.map((r) => [r.target, r.requests_per_second, r.p50_ms, r.p99_ms, r.ratio, r.failed]),
          },
        },
      ],
      summary: rows
        .filter((r) => r.target !== 'bare fastify')
        .flatMap((r) => [
          {
            scenario: 'd. API reads',
            metric: `${r.target} / bare Fastify`,
            value: r.ratio,
            unit: '',
            target: { op: '>=' as const, value: TARGET_RATIO },
          },
          {
            scenario: 'd. API reads',
            metric: `${r.target} failed requests`,
            value: r.failed,
            unit: '',
            target: { op: '<=' as const, value: 0 },
          },
        ]),
      notes: ['The bare server runs before and after the routes; the ratio is against the mean of the two.'],
      details: { rows },
    };
  },
};
