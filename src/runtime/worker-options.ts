/** Turns the `worker` section of the config into the agent's options, detecting what is left at 0. */
import type { Config } from '../config/schema.ts';
import { detectResources } from '../worker/host-resources.ts';
import type { WorkerAgentOptions } from '../worker/agent.ts';

export function workerAgentOptions(config: Config): WorkerAgentOptions {
  const w = config.worker;
  return {
    ...(w.id ? { id: w.id } : {}),
    ...(w.hostname ? { hostname: w.hostname } : {}),
    ...(w.address ? { address: w.address } : {}),
    zone: w.zone,
    labels: w.labels,
    capabilities: w.capabilities,
    resources: detectResources(w.resources, w.drivers.state_dir),
    heartbeatIntervalMs: w.heartbeat_interval,
    ttlMs: w.ttl,
    metricsIntervalMs: w.metrics_interval,
    concurrency: w.concurrency,
    stateDir: w.drivers.state_dir,
  };
}
