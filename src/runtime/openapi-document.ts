/**
 * The OpenAPI document as the server serves it at /api/docs/json, for `docs/openapi.json`: an
 * embedded system in memory builds its routes, answers the document once, and stops. The contract
 * test checks that the checked-in file is this document, so a change to the API shows in review.
 * `npm run docs:openapi` rewrites the file.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../config/load.ts';
import { startDev } from './dev.ts';
import { silentLogger } from './logger.ts';

export async function openApiDocument(): Promise<unknown> {
  const stateDir = mkdtempSync(join(tmpdir(), 'aetherium-openapi-'));
  try {
    const config = loadConfig({
      env: {},
      overrides: {
        store: { kind: 'pglite', pglite: { data_dir: 'memory://' } },
        log: { level: 'silent' },
        worker: { drivers: { enabled: ['process'], allow_process: true, state_dir: stateDir } },
      },
    });
    const system = await startDev(config, silentLogger, { listen: false });
    try {
      const response = await system.controlPlane.http.inject({
        method: 'GET',
        url: '/api/docs/json',
        headers: { authorization: `Bearer ${system.adminKey}` },
      });
      return JSON.parse(response.body);
    } finally {
      await system.stop();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const target = process.argv[2] ?? 'docs/openapi.json';
  writeFileSync(target, `${JSON.stringify(await openApiDocument(), null, 2)}\n`);
  process.stdout.write(`wrote ${target}\n`);
}
