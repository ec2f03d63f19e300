/**
 * Turns the `worker` section of the config into the agent's options, detecting what is left at 0,
 * and says who the worker is and where its state lives — one answer for everything that needs it
 * (the agent, its drivers, its lock), so that they can never disagree.
 */
import { hostname } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { WORKER_ID_PATTERN } from '../domain/node-identity.ts';
import { detectResources } from '../worker/host-resources.ts';
import type { WorkerAgentOptions } from '../worker/agent.ts';

/** The configured worker.id, else the host name (the agent's own default). */
export function workerId(config: Config): string {
  return config.worker.id ?? hostname();
}

/**
 * worker.drivers.state_dir, else `.aetherium/workers/<worker id>`: each worker on a host keeps its
 * VMs, its lock and its identity apart from the others'. Sharing one dir is how a restarted worker
 * once reconciled another worker's VMs away.
 */
export function workerStateDir(config: Config): string {
  const configured = config.worker.drivers.state_dir;
  if (configured !== null) return configured;
  const id = workerId(config);
  // The id becomes a directory name: a host name that is not a valid worker id needs worker.id.
  if (!WORKER_ID_PATTERN.test(id)) {
    throw new ConfigError(
      `the host name ${JSON.stringify(id)} cannot name this worker's state directory (letters, digits, ".", "_" and "-", at most 63): set worker.id or worker.drivers.state_dir`,
    );
  }
  return join('.aetherium', 'workers', id);
}

export function workerAgentOptions(config: Config): WorkerAgentOptions {
  const w = config.worker;
  const stateDir = workerStateDir(config);
  return {
    id: workerId(config),
    ...(w.hostname ? { hostname: w.hostname } : {}),
    ...(w.address ? { address: w.address } : {}),
    zone: w.zone,
    labels: w.labels,
    capabilities: w.capabilities,
    resources: detectResources(w.resources, stateDir),
    heartbeatIntervalMs: w.heartbeat_interval,
    ttlMs: w.ttl,
    metricsIntervalMs: w.metrics_interval,
    concurrency: w.concurrency,
    stateDir,
  };
}
