/**
 * An agent port on embedded engines in this process, with a CA of its own, and workers that reach
 * it only through RemoteWorkerLink over mutual TLS on loopback: for the agent link's conformance
 * suite and `bench:agent`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConnection } from '../../src/adapters/agent/agent-connection.ts';
import { RemoteWorkerLink } from '../../src/adapters/agent/remote-worker-link.ts';
import { type CertificateAuthority, createCa, parseCa } from '../../src/adapters/pki/ca.ts';
import { issueServerCert, issueWorkerCert } from '../../src/adapters/pki/certificates.ts';
import { LocalNodeCertificateAuthority } from '../../src/adapters/pki/node-ca.ts';
import { loadConfig } from '../../src/config/load.ts';
import type { WorkerRegistration } from '../../src/domain/index.ts';
import { type Engines, openEngines } from '../../src/runtime/engines.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { linkOverEngines } from '../../src/runtime/worker-link.ts';
import { AgentServer } from '../../src/server/agent/agent-server.ts';
import type { DirectWorkerLink } from '../../src/server/worker-link/direct-worker-link.ts';
import { JoinTokenService } from '../../src/server/services/join-token-service.ts';
import { freePort } from './processes.ts';

export interface AgentPort {
  engines: Engines;
  /** The link the agent port serves with: the control plane's in-process one. */
  direct: DirectWorkerLink;
  ca: CertificateAuthority;
  joins: JoinTokenService;
  address: string;
  /** A worker with a fresh certificate for `workerId`, connected and ready (not registered). */
  connect(workerId: string): Promise<{ link: RemoteWorkerLink; connection: AgentConnection; connectMs: number }>;
  stop(): Promise<void>;
}

export async function startAgentPort(): Promise<AgentPort> {
  const dir = mkdtempSync(join(tmpdir(), 'aetherium-agent-port-'));
  const config = loadConfig({
    env: {},
    overrides: { store: { kind: 'pglite', pglite: { data_dir: join(dir, 'pglite') } }, log: { level: 'silent' } },
  });
  const engines = await openEngines(config, silentLogger);
  const pems = await createCa();
  const ca = await parseCa(pems.certPem, pems.keyPem);
  const serverCert = await issueServerCert(ca);
  const port = await freePort();
  const joins = new JoinTokenService(engines.store);
  const direct = linkOverEngines(engines, silentLogger);
  const server = new AgentServer(
    {
      host: '127.0.0.1',
      port,
      tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: pems.certPem },
      pingIntervalMs: 5000,
    },
    {
      link: direct,
      store: engines.store,
      queue: engines.queue,
      channels: engines.channels,
      ca: new LocalNodeCertificateAuthority(ca),
      certTtlMs: 3_600_000,
      joins,
      log: silentLogger,
    },
  );
  await server.start();
  const address = `127.0.0.1:${port}`;
  const connections: AgentConnection[] = [];
  return {
    engines,
    direct,
    ca,
    joins,
    address,
    async connect(workerId) {
      const issued = await issueWorkerCert(ca, workerId);
      const connection = new AgentConnection({
        servers: [address],
        tls: () => ({ ca: pems.certPem, cert: issued.certPem, key: issued.keyPem }),
        log: silentLogger,
      });
      connections.push(connection);
      const link = new RemoteWorkerLink(connection);
      const started = performance.now();
      connection.start();
      await connection.connected(10_000);
      return { link, connection, connectMs: performance.now() - started };
    },
    async stop() {
      for (const connection of connections) await connection.close();
      await server.stop();
      await engines.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A plain worker registration, for tests and benches that need one. */
export function workerRegistration(id: string): WorkerRegistration {
  return {
    id,
    hostname: `host-${id}`,
    address: '127.0.0.1',
    zone: 'z1',
    labels: {},
    capabilities: ['process'],
    cpu_cores: 8,
    memory_mb: 8192,
    disk_gb: 50,
    max_vms: 10,
    ttl_seconds: 30,
    metadata: {},
  };
}
