/**
 * `aetherium server` and `aetherium worker`: the two processes of a cluster. Every server replica
 * connects to the same engines (Postgres, Redis, and Consul / etcd / the built-in registry);
 * separate processes can only cooperate through engines they share, so the embedded kinds are
 * refused with a clear reason. Workers connect to the replicas' agent ports, never to an engine.
 */
import type { Config } from '../config/schema.ts';
import { readFileSync } from 'node:fs';
import { LocalNodeCertificateAuthority } from '../adapters/pki/node-ca.ts';
import { ConfigError } from '../config/load.ts';
import { errorMessage } from '../domain/index.ts';
import { ControlPlane, type ControlPlaneDeps } from '../server/control-plane.ts';
import { openEngines } from './engines.ts';
import type { Logger } from './logger.ts';
import { VERSION } from './version.ts';
import { createTracing } from '../observability/tracing.ts';
import { requireSafeBind } from './safe-bind.ts';
import { packagePath } from '../adapters/package-root.ts';

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
  const agent = await agentPort(config, log);
  const engines = await openEngines(config, log);
  const tracing = createTracing(config.telemetry.otlp, 'server', VERSION);
  const controlPlane = new ControlPlane(config, {
    ...engines,
    log,
    tracing,
    mode: 'server',
    version: VERSION,
    agent,
    uiDir: packagePath('web', 'dist'),
  });
  try {
    const address = await controlPlane.startAndListen(true);
    return {
      address,
      controlPlane,
      stop: async () => {
        await controlPlane.stop();
        await engines.close();
        await tracing.shutdown().catch(() => undefined);
      },
    };
  } catch (err) {
    // The start error is the one to report; stopping what started is best effort.
    await controlPlane.stop().catch(() => undefined);
    await engines.close();
    throw err;
  }
}

/** `aetherium worker`: see worker-process.ts; it needs no engine, only the agent ports. */
export { startWorker } from './worker-process.ts';

/**
 * The agent port's TLS from `agent.tls`: the replica's certificate, the CA whose worker
 * certificates it accepts, and (optionally) the CA key that lets it admit joining workers.
 * Without them there is no agent port, and workers have nowhere to connect: said loudly.
 */
async function agentPort(config: Config, log: Logger): Promise<ControlPlaneDeps['agent']> {
  const { tls } = config.agent;
  if (!tls.cert_file && !tls.key_file && !tls.ca_file) {
    log.warn(
      'no agent port: agent.tls (ca_file, cert_file, key_file) is not set, so no worker can connect; see `aetherium tls --help`',
    );
    return null;
  }
  if (!tls.cert_file || !tls.key_file || !tls.ca_file)
    throw new ConfigError(
      'agent.tls needs ca_file, cert_file and key_file together: the agent port is mutual TLS only',
    );
  const read = (file: string, what: string) => {
    try {
      return readFileSync(file);
    } catch (err) {
      throw new ConfigError(`agent.tls: cannot read ${what} ${file}: ${errorMessage(err)}`);
    }
  };
  const ca = tls.ca_key_file ? await LocalNodeCertificateAuthority.fromFiles(tls.ca_file, tls.ca_key_file) : null;
  if (!ca) log.info('agent.tls.ca_key_file is not set: workers cannot join with a token or renew here');
  return {
    options: {
      host: config.agent.host,
      port: config.agent.port,
      tls: {
        cert: read(tls.cert_file, 'the server certificate'),
        key: read(tls.key_file, 'the server key'),
        ca: read(tls.ca_file, 'the CA certificate'),
      },
      pingIntervalMs: Math.max(1000, Math.min(10_000, Math.floor(config.worker.ttl / 4))),
    },
    ca,
    certTtlMs: config.agent.cert_ttl,
  };
}
