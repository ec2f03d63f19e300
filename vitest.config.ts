import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Builds dist/ when stale: the tests that spawn the CLI run it.
    globalSetup: ['./test/global-setup.ts'],
    // Engines (PGlite, Postgres, sandboxes) are heavy for a 2-core machine: two files at a time.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 120_000,
    // Each file starts its own engines on their own ports and directories, so files are independent.
    isolate: true,
  },
});
