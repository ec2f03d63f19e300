/**
 * A simulated worker: the real client end of the agent channel (AgentConnection over mutual TLS
 * and RemoteWorkerLink, the code `aetherium worker` runs) with no agent behind it. It connects,
 * registers and heartbeats; it pulls no queue and runs no VM, so thousands fit in one process.
 * The channel carries one worker per connection (the certificate names the worker, and a second
 * connection for an id is refused), so each simulated worker has a connection of its own.
 */
import { AgentConnection, type AgentTls } from '../../src/adapters/agent/agent-connection.ts';
import { RemoteWorkerLink } from '../../src/adapters/agent/remote-worker-link.ts';
import type { WorkerRegistration } from '../../src/domain/index.ts';
import { silentLogger } from '../../src/runtime/logger.ts';

export class SimWorker {
  readonly connection: AgentConnection;
  readonly link: RemoteWorkerLink;

  constructor(
    readonly id: string,
    agent: string,
    tls: AgentTls,
  ) {
    this.connection = new AgentConnection({ servers: [agent], tls: () => tls, log: silentLogger });
    this.link = new RemoteWorkerLink(this.connection);
  }

  async connect(timeoutMs = 30_000): Promise<void> {
    this.connection.start();
    await this.connection.connected(timeoutMs);
  }

  register(ttlSeconds = 30): Promise<{ created: boolean }> {
    return this.link.register(registration(this.id, ttlSeconds));
  }

  /** One heartbeat; resolves with its round trip in ms. */
  async heartbeat(): Promise<number> {
    const started = performance.now();
    const ack = await this.link.heartbeat(this.id);
    if (!ack) throw new Error(`heartbeat of ${this.id}: the control plane does not know this worker`);
    return performance.now() - started;
  }

  close(): Promise<void> {
    return this.connection.close();
  }
}

export function registration(id: string, ttlSeconds: number): WorkerRegistration {
  return {
    id,
    hostname: id,
    address: '127.0.0.1',
    zone: `zone-${id.length % 3}`,
    labels: { simulated: 'true' },
    capabilities: ['process'],
    cpu_cores: 16,
    memory_mb: 32_768,
    disk_gb: 200,
    max_vms: 50,
    ttl_seconds: ttlSeconds,
    metadata: { simulated: true },
  };
}
