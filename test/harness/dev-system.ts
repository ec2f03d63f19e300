/**
 * A whole embedded system in the test process: PGlite in memory, in-memory queue and bus, a local
 * worker with real drivers. Routes are driven through Fastify's inject(), without sockets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { startDev, type DevSystem } from '../../src/runtime/dev.ts';
import type { LogBuffer } from '../../src/runtime/log-buffer.ts';
import { type Logger, silentLogger } from '../../src/runtime/logger.ts';
import { carryKey, type Inject } from './auth.ts';

export interface TestSystem {
  system: DevSystem;
  /** Its inject() carries the admin key; `rawInject` sends only what the test gives. */
  app: FastifyInstance;
  rawInject: Inject;
  adminKey: string;
  config: Config;
  stateDir: string;
  stop(): Promise<void>;
}

export interface TestSystemOptions {
  /** The agent CA's fingerprint (`sha256:<hex>`) the control plane pins in join tokens; default none. */
  agentCaFingerprint?: string;
  /** Where the system logs (default: nowhere), for tests that read what it wrote. */
  log?: Logger;
  /** The local worker's log buffer, served by `GET /workers/{id}/logs` (default: none, that route is 404). */
  logs?: LogBuffer;
}

export async function startTestSystem(
  overrides: Record<string, unknown> = {},
  options: TestSystemOptions = {},
): Promise<TestSystem> {
  const stateDir = mkdtempSync(join(tmpdir(), 'aetherium-test-'));
  const worker = (overrides.worker as Record<string, unknown> | undefined) ?? {};
  const config = loadConfig({
    env: {},
    overrides: {
      store: { kind: 'pglite', pglite: { data_dir: 'memory://' } },
      scheduler: { interval: '200ms' },
      log: { level: 'silent' },
      ...overrides,
      worker: {
        id: 'test-worker',
        zone: 'test-zone',
        heartbeat_interval: '1s',
        ttl: '5s',
        resources: { cpu_cores: 8, memory_mb: 8192, disk_gb: 100, max_vms: 10 },
        ...worker,
        drivers: {
          enabled: ['process'],
          allow_process: true,
          state_dir: stateDir,
          ...(worker.drivers as object | undefined),
        },
      },
    },
  });
  const system = await startDev(config, options.log ?? silentLogger, {
    listen: false,
    ...(options.logs ? { logs: options.logs } : {}),
  });
  if (options.agentCaFingerprint) system.controlPlane.agentCa = { fingerprint: options.agentCaFingerprint };
  const app = system.controlPlane.http;
  await app.ready();
  const rawInject = carryKey(app, system.adminKey);
  return {
    system,
    app,
    rawInject,
    adminKey: system.adminKey,
    config,
    stateDir,
    stop: async () => {
      await system.stop();
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
