/**
 * The fault suite, short form: one round of every fault (worker SIGKILL, replica SIGKILL, Redis
 * SIGKILL, Postgres SIGKILL, worker partition) under a steady load of creates, execs and deletes
 * on a real cluster, then the invariants: no task lost or stuck, no VM started twice or on two
 * hosts, capacity equal to the live reservations, events once and in order across resumes.
 * `npm run test:faults` runs the long form (FAULTS=long: more rounds, lanes and workers). The
 * table it prints and what each column and check means: docs/FAULTS.md.
 */
import { describe, expect, it } from 'vitest';
import { profileFromEnv, runFaultSuite } from './faults/suite.ts';

const profile = profileFromEnv();
// Generous: a 2-core machine shared with other test files; the short run takes about two minutes.
const budgetMs = profile.name === 'long' ? 60 * 60_000 : 480_000;

describe(`fault suite (${profile.name})`, () => {
  it(
    'keeps every invariant through worker, replica, Redis and Postgres kills and a partition',
    async () => {
      const result = await runFaultSuite(profile);
      console.log(result.report);
      const failed = result.checks.filter((c) => !c.ok);
      expect(
        failed.map((c) => c.name),
        `${result.report}\n\n${failed.length ? result.logs : ''}`,
      ).toEqual([]);
      // Every fault was noticed and its target came back: otherwise the run proved little.
      for (const row of result.rows) {
        expect(row.detectedMs, `${row.fault} on ${row.target} was never noticed\n${result.report}`).not.toBeNull();
        expect(row.backMs, `${row.fault} on ${row.target} never came back\n${result.report}`).not.toBeNull();
      }
    },
    budgetMs,
  );
});
