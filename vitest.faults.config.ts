/**
 * The long fault suite (`npm run test:faults`): the same test file as the short form inside
 * `npm test`, with FAULTS=long (more rounds, load lanes and workers; see docs/FAULTS.md). One file,
 * one worker: it starts a whole cluster and wants the machine to itself.
 */
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/faults.cluster.test.ts'],
    globalSetup: ['./test/global-setup.ts'],
    env: { FAULTS: process.env.FAULTS ?? 'long' },
    maxWorkers: 1,
    testTimeout: 3_600_000,
    hookTimeout: 300_000,
  },
});
