/**
 * A worker's own Prometheus endpoint (`worker.metrics`): `GET /metrics` on a listener of its own,
 * since a worker has no API port. Loopback by default; on any other address it needs a token, as
 * metrics name VMs and workers and nobody should read them anonymously.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { ConfigError } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import type { Logger } from './logger.ts';
import { isLoopback } from './safe-bind.ts';

export interface MetricsListener {
  /** host:port it listens on (the port the system chose when 0 was asked). */
  readonly address: string;
  close(): Promise<void>;
}

type MetricsConfig = Config['worker']['metrics'];

export function checkMetricsConfig(config: MetricsConfig): void {
  if (config.enabled && !config.token && !isLoopback(config.host))
    throw new ConfigError(
      `worker.metrics.host is ${config.host} and worker.metrics.token is not set, so anyone who reaches it could read ` +
        "this host's metrics: set a token (AETHERIUM_WORKER__METRICS__TOKEN) or listen on 127.0.0.1",
    );
}

/** Compare hashes, so neither the length nor the bytes of the token leak through timing. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const given = header?.startsWith('Bearer ') ? header.slice('Bearer '.length) : '';
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(given), digest(token));
}

/**
 * Listens, or answers null with a warning when the port is taken: a worker whose metrics cannot be
 * served still runs its VMs (the control plane's metrics still cover it).
 */
export async function startMetricsListener(
  config: MetricsConfig,
  registry: Registry,
  log: Logger,
): Promise<MetricsListener | null> {
  if (!config.enabled) return null;
  checkMetricsConfig(config);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const reply = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code, message } }));
    };
    if (path !== '/metrics') return reply(404, 'not_found', 'only GET /metrics is served here');
    if (req.method !== 'GET' && req.method !== 'HEAD') return reply(405, 'method_not_allowed', 'use GET /metrics');
    if (config.token && !tokenMatches(req.headers.authorization, config.token)) {
      res.setHeader('www-authenticate', 'Bearer');
      return reply(401, 'unauthorized', 'send Authorization: Bearer <worker.metrics.token>');
    }
    registry.metrics().then(
      (text) => {
        res.writeHead(200, { 'content-type': registry.contentType });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      (err: unknown) => {
        log.warn({ err: String(err) }, 'worker metrics could not be collected');
        reply(500, 'internal', 'metrics could not be collected');
      },
    );
  });
  server.keepAliveTimeout = 65_000; // longer than Prometheus' scrape interval: one connection per target
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EADDRINUSE' && code !== 'EADDRNOTAVAIL') throw err;
    log.warn(
      { host: config.host, port: config.port, code },
      'worker metrics listener could not open: set worker.metrics.port to a free port (the worker runs without it)',
    );
    return null;
  }
  const { address, port } = server.address() as AddressInfo;
  const shown = address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
  log.info({ address: shown, token: config.token ? 'required' : 'none' }, 'worker metrics at GET /metrics');
  return {
    address: shown,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
