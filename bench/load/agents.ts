/**
 * Real workers in this process: WorkerAgent with the `process` driver, reaching the control plane
 * only over the agent channel (AgentConnection over mutual TLS, RemoteWorkerLink), as
 * `aetherium worker` does, with a certificate of the cluster CA and the worker defaults of the
 * config (heartbeat, TTL, concurrency). Cheaper than a process each: ten of them share one Node.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { AgentConnection } from '../../src/adapters/agent/agent-connection.ts';
import { RemoteExecChannels } from '../../src/adapters/agent/remote-exec-channels.ts';
import { RemoteWorkerLink } from '../../src/adapters/agent/remote-worker-link.ts';
import { issueWorkerCert } from '../../src/adapters/pki/certificates.ts';
import { ProcessDriver } from '../../src/adapters/vmm/process/process-driver.ts';
import { configSchema } from '../../src/config/schema.ts';
import type { DriverName, WorkerResources } from '../../src/domain/index.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { WorkerAgent } from '../../src/worker/agent.ts';
import type { ControlPlane } from './control-plane.ts';
import type { Scope } from './scope.ts';
import { sleep } from './stats.ts';

export interface ProcessAgentsOptions {
  count: number;
  /** Folder for the workers' VM directories (removed with the scope). */
  dir: string;
  resources: WorkerResources;
  prefix?: string;
}

export async function startProcessAgents(
  cp: ControlPlane,
  scope: Scope,
  options: ProcessAgentsOptions,
): Promise<WorkerAgent[]> {
  const defaults = configSchema.parse({}).worker;
  mkdirSync(options.dir, { recursive: true });
  scope.defer('worker folders', () => rmSync(options.dir, { recursive: true, force: true }));
  const agents = await Promise.all(
    Array.from({ length: options.count }, async (_, i) => {
      const id = `${options.prefix ?? 'load-worker'}-${String(i).padStart(2, '0')}`;
      const issued = await issueWorkerCert(cp.ca, id);
      const connection = new AgentConnection({
        servers: [cp.agent],
        tls: () => ({ ca: cp.ca.certPem, cert: issued.certPem, key: issued.keyPem }),
        log: silentLogger,
        idleTimeoutMs: Math.max(5000, Math.min(20_000, defaults.ttl / 2)),
      });
      scope.defer(`agent channel of ${id}`, () => connection.close());
      connection.start();
      await connection.connected(30_000);
      const stateDir = join(options.dir, id);
      const driver = new ProcessDriver({ stateDir: join(stateDir, 'process'), owner: id });
      scope.defer(`driver of ${id}`, () => driver.close());
      const agent = new WorkerAgent(
        {
          id,
          hostname: id,
          address: '127.0.0.1',
          zone: `zone-${i % 3}`,
          labels: {},
          capabilities: [],
          resources: options.resources,
          heartbeatIntervalMs: defaults.heartbeat_interval,
          ttlMs: defaults.ttl,
          metricsIntervalMs: defaults.metrics_interval,
          concurrency: defaults.concurrency,
          stateDir,
        },
        {
          link: new RemoteWorkerLink(connection),
          channels: new RemoteExecChannels(connection),
          drivers: new Map<DriverName, ProcessDriver>([['process', driver]]),
          log: silentLogger,
        },
      );
      await agent.start();
      scope.defer(`worker ${id}`, () => agent.stop());
      return agent;
    }),
  );
  await waitForWorkers(
    cp,
    agents.map((a) => a.id),
  );
  return agents;
}

/** Until every one of `ids` is listed active and healthy by the control plane. */
export async function waitForWorkers(cp: ControlPlane, ids: string[], timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await cp.api<{ workers: { id: string; status: string; is_healthy: boolean }[] }>(
      'GET',
      '/workers',
    );
    const ready = new Set(body.workers.filter((w) => w.status === 'active' && w.is_healthy).map((w) => w.id));
    if (ids.every((id) => ready.has(id))) return;
    if (Date.now() > deadline)
      throw new Error(`workers not ready after ${timeoutMs} ms: ${ids.filter((id) => !ready.has(id)).join(', ')}`);
    await sleep(100);
  }
}
