/**
 * `aetherium worker`: the agent for one host in a cluster. It knows the control plane's agent
 * ports and its own certificate, and nothing else: no database, queue or registry address, no
 * cluster credential. Everything it does travels on the agent channel (src/adapters/agent).
 *
 * Start: lock the state dir (one worker per id and dir), get an identity (certificate files, an
 * earlier join, or a join now), connect, start the agent. The certificate is renewed by itself at
 * two thirds of its lifetime and the channel reconnected with it; the VMs do not notice.
 */
import { createKeyAndCsr } from '../adapters/pki/csr.ts';
import { AgentConnection } from '../adapters/agent/agent-connection.ts';
import { RemoteExecChannels } from '../adapters/agent/remote-exec-channels.ts';
import { RemoteWorkerLink } from '../adapters/agent/remote-worker-link.ts';
import type { Config } from '../config/schema.ts';
import { ConfigError } from '../config/load.ts';
import { errorMessage } from '../domain/index.ts';
import type { RenewResponse } from '../ports/agent-protocol.ts';
import { WorkerAgent } from '../worker/agent.ts';
import { buildDrivers } from './drivers.ts';
import type { Logger } from './logger.ts';
import type { LogBuffer } from './log-buffer.ts';
import { serveLogs } from './log-buffer.ts';
import { describeCertificate, renewAt, resolveIdentity, saveIdentity, type WorkerIdentity } from './worker-identity.ts';
import { checkMetricsConfig, type MetricsListener, startMetricsListener } from './metrics-listener.ts';
import { acquireWorkerLock } from './worker-lock.ts';
import { VERSION } from './version.ts';
import { createTracing, type Tracing } from '../observability/tracing.ts';
import { workerAgentOptions, workerId, workerStateDir } from './worker-options.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RunningWorker {
  address: null;
  agent: WorkerAgent;
  connection: AgentConnection;
  /** The worker's own GET /metrics (worker.metrics), null when disabled or its port was taken. */
  metrics: MetricsListener | null;
  identity(): WorkerIdentity;
  stop(): Promise<void>;
}

export async function startWorker(given: Config, log: Logger, logs?: LogBuffer): Promise<RunningWorker> {
  let config = given;
  const w = config.worker;
  if (!w.servers.length)
    throw new ConfigError(
      'worker.servers is empty: give the control plane agent ports (--server host:4647, or AETHERIUM_WORKER__SERVERS)',
    );
  config = withCertificateId(config);
  checkMetricsConfig(w.metrics);
  const stateDir = workerStateDir(config);
  const lock = await acquireWorkerLock(stateDir, workerId(config), log);
  let connection: AgentConnection | null = null;
  let renewer: NodeJS.Timeout | null = null;
  let metrics: MetricsListener | null = null;
  let tracing: Tracing | null = null;
  try {
    let identity = await resolveIdentity(
      {
        workerId: workerId(config),
        configuredId: true,
        servers: w.servers,
        tls: w.tls,
        joinToken: w.join_token,
        dir: w.identity_dir ?? join(stateDir, 'identity'),
      },
      log,
    );
    const agentLog = log.child({ component: 'agent-channel' });
    const conn = new AgentConnection({
      servers: w.servers,
      tls: () => identity,
      log: agentLog,
      // A replica that stops answering is left well before the control plane calls us dead.
      idleTimeoutMs: Math.max(5000, Math.min(20_000, w.ttl / 2)),
    });
    connection = conn;
    const link = new RemoteWorkerLink(conn);
    const channels = new RemoteExecChannels(conn);
    if (logs) serveLogs(conn, logs);
    conn.start();
    await conn.connected(60_000);

    const { drivers, warnings } = await buildDrivers(config, 'worker', log);
    tracing = createTracing(config.telemetry.otlp, 'worker', VERSION);
    for (const warning of warnings) log.warn(warning);
    const agent = new WorkerAgent(workerAgentOptions(config), {
      link,
      channels,
      drivers,
      log,
      processMetrics: true,
      tracing,
    });
    await agent.start();
    metrics = await startMetricsListener(w.metrics, agent.metrics.registry, log.child({ component: 'metrics' }));

    const scheduleRenewal = (delayMs?: number) => {
      if (!identity.dir) {
        log.info(
          { expires_at: identity.notAfter },
          'the worker certificate was given as files: it is not renewed by itself',
        );
        return;
      }
      const wait = delayMs ?? Math.max(1000, renewAt(identity).getTime() - Date.now());
      renewer = setTimeout(() => void renew(), wait);
      renewer.unref();
    };
    const renew = async () => {
      try {
        const { keyPem, csrPem } = await createKeyAndCsr(identity.workerId);
        const answer = await conn.call<RenewResponse>('renew', [csrPem]);
        const next = describeCertificate(answer.certificate);
        saveIdentity(identity.dir as string, { ca: identity.ca, cert: answer.certificate, key: keyPem });
        identity = { ...identity, ...next, cert: answer.certificate, key: keyPem };
        log.info({ expires_at: identity.notAfter }, 'worker certificate renewed');
        // The channel presents a certificate at its handshake only: connect again with the new one.
        conn.reconnect('certificate renewed');
        scheduleRenewal();
      } catch (err) {
        const left = identity.notAfter.getTime() - Date.now();
        log.warn({ err: errorMessage(err), expires_in_ms: left }, 'certificate renewal failed; trying again');
        scheduleRenewal(Math.max(1000, Math.min(30_000, left / 10)));
      }
    };
    scheduleRenewal();

    return {
      address: null,
      agent,
      connection: conn,
      metrics,
      identity: () => identity,
      stop: async () => {
        if (renewer) clearTimeout(renewer);
        // Leaving for good: drain first, so queued VMs go elsewhere and running ones end cleanly.
        await agent.drainAndStop({ deadline_seconds: Math.ceil(w.drain_deadline / 1000) }, (progress) =>
          log.info({ vms_left: progress.vm_count, deadline: progress.drain?.deadline ?? null }, 'draining before exit'),
        );
        await metrics?.close();
        for (const driver of drivers.values()) await driver.close();
        await conn.close();
        await tracing?.shutdown().catch(() => undefined);
        await lock.release();
      },
    };
  } catch (err) {
    if (renewer) clearTimeout(renewer);
    await metrics?.close();
    await connection?.close().catch(() => undefined);
    await lock.release();
    throw err;
  }
}

/**
 * With certificate files and no `worker.id`, the certificate says who this worker is: its id
 * names the state dir, the lock and the owner of every VM, so it is settled before any of them.
 */
function withCertificateId(config: Config): Config {
  const { tls, id } = config.worker;
  if (id || !tls.cert_file) return config;
  const { workerId: fromCert } = describeCertificate(readFileSync(tls.cert_file, 'utf8'));
  return { ...config, worker: { ...config.worker, id: fromCert } };
}
