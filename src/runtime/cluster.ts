/**
 * `aetherium server` and `aetherium worker`: the two processes of a cluster. Both connect to the
 * same engines (Postgres, Redis, and Consul / etcd / the built-in registry); separate processes can
 * only cooperate through engines they share, so the embedded kinds are refused with a clear reason.
 */
import type { Config } from '../config/schema.ts';
import { ControlPlane } from '../server/control-plane.ts';
import { WorkerAgent } from '../worker/agent.ts';
import { buildDrivers } from './drivers.ts';
import { openEngines } from './engines.ts';
import type { Logger } from './logger.ts';
import { VERSION } from './version.ts';
import { workerAgentOptions } from './worker-options.ts';
import { linkOverEngines } from './worker-link.ts';
import { requireSafeBind } from './safe-bind.ts';

export class SharedEnginesRequired extends Error {}

export function requireSharedEngines(config: Config, role: string): void {
  const local: string[] = [];
  if (config.store.kind === 'pglite') local.push('store.kind is pglite (use postgres)');
  if (config.queue.kind === 'memory') local.push('queue.kind is memory (use redis)');
  if (config.events.kind === 'memory') local.push('events.kind is memory (use redis)');
  if (local.length > 0) {
    throw new SharedEnginesRequired(
      `aetherium ${role} runs as one of several processes and needs engines they share, but ${local.join(', ')}. On a single machine, \`aetherium dev\` runs everything in one process.`,
    );
  }
}

export interface RunningProcess {
  address: string | null;
  stop(): Promise<void>;
}

export async function startServer(
  config: Config,
  log: Logger,
): Promise<RunningProcess & { controlPlane: ControlPlane }> {
  requireSharedEngines(config, 'server');
  requireSafeBind(config, 'server');
  const engines = await openEngines(config, log);
  const controlPlane = new ControlPlane(config, { ...engines, log, mode: 'server', version: VERSION });
  try {
    const address = await controlPlane.startAndListen(true);
    return {
      address,
      controlPlane,
      stop: async () => {
        await controlPlane.stop();
        await engines.close();
      },
    };
  } catch (err) {
    // The start error is the one to report; stopping what started is best effort.
    await controlPlane.stop().catch(() => undefined);
    await engines.close();
    throw err;
  }
}

export async function startWorker(config: Config, log: Logger): Promise<RunningProcess & { agent: WorkerAgent }> {
  requireSharedEngines(config, 'worker');
  const engines = await openEngines(config, log);
  try {
    const { drivers, warnings } = await buildDrivers(config, 'worker', log);
    for (const warning of warnings) log.warn(warning);
    const link = linkOverEngines(engines, log);
    const agent = new WorkerAgent(workerAgentOptions(config), { link, channels: engines.channels, drivers, log });
    await agent.start();
    return {
      address: null,
      agent,
      stop: async () => {
        // Leaving for good: drain first, so queued VMs go elsewhere and running ones end cleanly.
        await agent.drainAndStop({ deadline_seconds: Math.ceil(config.worker.drain_deadline / 1000) }, (progress) =>
          log.info({ vms_left: progress.vm_count, deadline: progress.drain?.deadline ?? null }, 'draining before exit'),
        );
        for (const driver of drivers.values()) await driver.close();
        await engines.close();
      },
    };
  } catch (err) {
    await engines.close();
    throw err;
  }
}
