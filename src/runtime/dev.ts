/**
 * `aetherium dev`: the control plane and one local worker in one process, on the embedded engines
 * (PGlite, in-memory queue and bus, built-in registry) — the same API, task flow and ports as a
 * cluster.
 */
import { LocalWorkerLogs, type LogBuffer } from './log-buffer.ts';
import type { Config } from '../config/schema.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { WorkerAgent } from '../worker/agent.ts';
import { buildDrivers } from './drivers.ts';
import { openEngines, type Engines } from './engines.ts';
import type { Logger } from './logger.ts';
import { VERSION } from './version.ts';
import { createTracing } from '../observability/tracing.ts';
import { workerAgentOptions, workerId } from './worker-options.ts';
import { ensureDevAdminKey } from './dev-admin-key.ts';
import { requireSafeBind } from './safe-bind.ts';
import { packagePath } from '../adapters/package-root.ts';

export interface DevSystem {
  engines: Engines;
  controlPlane: ControlPlane;
  agent: WorkerAgent;
  /** The address the API listens on, e.g. http://127.0.0.1:8080. */
  address: string | null;
  warnings: string[];
  /** The admin API key of this data directory (written to `adminKeyFile` unless the database is in memory). */
  adminKey: string;
  adminKeyFile: string | null;
  stop(): Promise<void>;
}

export async function startDev(
  config: Config,
  log: Logger,
  options: { listen?: boolean; logs?: LogBuffer } = {},
): Promise<DevSystem> {
  requireSafeBind(config, 'dev');
  const engines = await openEngines(config, log);
  const stack: (() => Promise<void>)[] = [() => engines.close()];
  const stopAll = async () => {
    for (const stop of stack.splice(0)) await stop().catch((err) => log.warn({ err }, 'shutdown step failed'));
  };
  try {
    const { drivers, warnings } = await buildDrivers(config, 'dev', log);
    stack.unshift(async () => {
      for (const driver of drivers.values()) await driver.close();
    });
    for (const warning of warnings) log.warn(warning);

    const tracing = createTracing(config.telemetry.otlp, 'dev', VERSION);
    stack.push(() => tracing.shutdown()); // last: the spans of everything that stops before it
    const controlPlane = new ControlPlane(config, {
      ...engines,
      log,
      tracing,
      mode: 'dev',
      version: VERSION,
      warnings: () => warnings,
      uiDir: packagePath('web', 'dist'),
      ...(options.logs ? { workerLogs: new LocalWorkerLogs(options.logs, workerId(config)) } : {}),
    });
    const link = controlPlane.workerLink();
    const agent = new WorkerAgent(workerAgentOptions(config), {
      link,
      channels: engines.channels,
      drivers,
      log,
      tracing,
    });
    // One process, one scrape: the worker's metrics are served with the control plane's.
    controlPlane.metrics.include(agent.metrics.registry);
    await agent.start();
    stack.unshift(() => agent.stop());
    const admin = await ensureDevAdminKey(config, controlPlane);
    const address = await controlPlane.startAndListen(options.listen ?? true);
    stack.unshift(() => controlPlane.stop());
    return {
      engines,
      controlPlane,
      agent,
      address,
      warnings,
      adminKey: admin.token,
      adminKeyFile: admin.file,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
