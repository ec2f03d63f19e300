/**
 * Connection habits shared by every Redis adapter (queue, event bus, exec channels, rate limits):
 * one way to open a connection (URL + TLS material), reconnect forever with a capped backoff, fail
 * calls fast while Redis is away (saying why the connection is down), close politely.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { tlsFailureHint, withTlsHint } from '../tls-errors.ts';

/**
 * What to trust and what to show on a `rediss://` connection, as PEM contents: the caller reads the
 * files once, at start. No `ca`: the system's CAs. `cert` + `key`: for a Redis that verifies its
 * clients (`tls-auth-clients yes`).
 */
export interface RedisTls {
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
}

/** Where a Redis adapter connects: `redis://` (plain) or `rediss://` (TLS), and the TLS material. */
export interface RedisEndpoint {
  /** `redis[s]://[user:password@]host:port[/db]` */
  url: string;
  tls?: RedisTls | undefined;
}

/**
 * The ioredis `tls` option. The URL decides whether the connection is TLS (ioredis turns it on for
 * `rediss://` by itself); material for a `redis://` URL is refused, because ioredis would quietly
 * speak TLS to what the URL says is a plain port.
 */
export function tlsOptions(endpoint: RedisEndpoint): Pick<RedisOptions, 'tls'> {
  const { tls } = endpoint;
  if (!tls || (tls.ca === undefined && tls.cert === undefined && tls.key === undefined)) return {};
  if (!/^rediss:\/\//i.test(endpoint.url))
    throw new Error('redis: TLS material (CA or client certificate) was given for a redis:// url; use rediss://');
  if ((tls.cert === undefined) !== (tls.key === undefined))
    throw new Error('redis: a client certificate needs its key, and a key its certificate');
  return { tls: { ...tls } };
}

const TLS_NAMES = { ca: 'tls.ca_file', cert: 'tls.cert_file and tls.key_file' };

/** The last error each connection reported since it was last ready: why it is down. */
const lastErrors = new WeakMap<Redis, Error>();

/** A connection to `endpoint` with `options`; its errors are remembered for whenReady's message. */
export function createRedis(endpoint: RedisEndpoint, options: RedisOptions): Redis {
  const client = new Redis(endpoint.url, { ...options, ...tlsOptions(endpoint) });
  const tlsWithoutCert = /^rediss:\/\//i.test(endpoint.url) && endpoint.tls?.cert === undefined;
  // With TLS, ioredis says `connect` once the handshake is done.
  let handshakeDone = false;
  client.on('connecting', () => (handshakeDone = false));
  client.on('connect', () => (handshakeDone = true));
  client.on('error', (err: Error) => {
    const reset = ['ECONNRESET', 'EPIPE'].includes((err as { code?: string }).code ?? '');
    // A server that refuses our certificate alerts, then resets: the alert is the reason, keep it.
    const previous = lastErrors.get(client);
    if (reset && previous && tlsFailureHint(previous, TLS_NAMES)) return;
    // In TLS 1.3 the server checks the client's certificate after the handshake; our first command
    // may meet the reset before the alert that says why. Without a certificate that is the likely why.
    if (reset && tlsWithoutCert && handshakeDone) {
      lastErrors.set(
        client,
        new Error(
          `${err.message} just after the TLS handshake (TLS: Redis closed the connection, as one with tls-auth-clients yes does when this client shows no certificate: set tls.cert_file and tls.key_file)`,
        ),
      );
      return;
    }
    lastErrors.set(client, err);
  });
  client.on('ready', () => lastErrors.delete(client));
  return client;
}

/** How long a call waits for a connection that is down before it fails. */
export const READY_WAIT_MS = 2000;

/** Reconnect forever: 100, 200, 400, 800, 1600, then every 2000 ms. */
export function reconnectDelayMs(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 6), 2000);
}

/**
 * Resolves when the connection is up, waiting at most `timeoutMs`: while Redis is down a call fails
 * within about two seconds, and a short blip (a restart, a failover) does not fail it.
 */
export function whenReady(client: Redis, timeoutMs = READY_WAIT_MS): Promise<void> {
  if (client.status === 'ready') return Promise.resolve();
  if (client.status === 'end') return Promise.reject(new Error('the redis connection is closed'));
  return new Promise((resolve, reject) => {
    const onReady = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      client.off('ready', onReady);
      // The reason matters most when it is not the network: a certificate refused, a password wrong.
      const last = lastErrors.get(client);
      const why = last ? `; last error: ${withTlsHint(last.message.trim(), last, TLS_NAMES)}` : '';
      reject(new Error(`redis is unreachable (connection ${client.status} for ${timeoutMs} ms${why})`));
    }, timeoutMs);
    client.once('ready', onReady);
  });
}

/** QUIT when connected (replies still due arrive first), else just drop the connection. */
export async function closeClient(client: Redis): Promise<void> {
  if (client.status === 'end') return;
  if (client.status !== 'ready') {
    client.disconnect();
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([client.quit(), new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
  } catch {
    // closing anyway
  } finally {
    clearTimeout(timer);
    client.disconnect();
  }
}
