/**
 * The worker's identity on the agent channel: the cluster CA it trusts, its certificate and its
 * key. Where they come from, in order:
 *
 * 1. `worker.tls.{ca_file,cert_file,key_file}`: certificates made by `aetherium tls cert create
 *    --worker ID`; the worker id is the certificate's.
 * 2. The identity directory (`worker.identity_dir`, default `<state dir>/identity`) of an earlier
 *    join, while its certificate is valid.
 * 3. A join: with `worker.join_token`, the worker makes its key here (it never leaves the host),
 *    checks the control plane's CA against the pin in the token before it sends the token, sends a
 *    signing request and keeps the certificate it gets. It renews it by itself at two thirds of
 *    its lifetime, over the channel.
 */
import { X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { caFingerprint } from '../adapters/pki/ca.ts';
import { createKeyAndCsr } from '../adapters/pki/csr.ts';
import {
  AetheriumError,
  errorMessage,
  identityFromAltNames,
  issuedAt,
  parseJoinToken,
  SERVER_NAME,
} from '../domain/index.ts';
import { AGENT_PATHS, type JoinResponse } from '../ports/agent-protocol.ts';
import type { Logger } from '../ports/logger.ts';

export interface WorkerIdentity {
  workerId: string;
  ca: string;
  cert: string;
  key: string;
  notBefore: Date;
  notAfter: Date;
  /** Where a renewed certificate is written; null for certificates given as files. */
  dir: string | null;
}

export interface IdentitySettings {
  /** The configured id (or the host name), when the certificate does not say. */
  workerId: string;
  configuredId: boolean;
  servers: string[];
  tls: { ca_file: string | null; cert_file: string | null; key_file: string | null };
  joinToken: string | null;
  dir: string;
}

const FILES = { ca: 'ca.pem', cert: 'worker.pem', key: 'worker-key.pem' } as const;

export class IdentityError extends AetheriumError {}

export function describeCertificate(certPem: string): { workerId: string; notBefore: Date; notAfter: Date } {
  const cert = new X509Certificate(certPem);
  const identity = identityFromAltNames(cert.subjectAltName);
  if (identity?.kind !== 'worker')
    throw new IdentityError('validation_failed', 'the certificate names no worker (is it a worker certificate?)');
  return { workerId: identity.id, notBefore: new Date(cert.validFrom), notAfter: new Date(cert.validTo) };
}

function fromPems(ca: string, cert: string, key: string, dir: string | null): WorkerIdentity {
  return { ...describeCertificate(cert), ca, cert, key, dir };
}

function readFile(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new IdentityError('validation_failed', `cannot read ${what} ${file}: ${errorMessage(err)}`);
  }
}

export async function resolveIdentity(settings: IdentitySettings, log: Logger): Promise<WorkerIdentity> {
  const { tls } = settings;
  if (tls.cert_file || tls.key_file) {
    if (!tls.cert_file || !tls.key_file || !tls.ca_file)
      throw new IdentityError(
        'validation_failed',
        'worker.tls needs ca_file, cert_file and key_file together (or none of them, to join with a token)',
      );
    const identity = fromPems(
      readFile(tls.ca_file, 'the CA file'),
      readFile(tls.cert_file, 'the certificate'),
      readFile(tls.key_file, 'the key'),
      null,
    );
    checkId(identity, settings);
    return identity;
  }
  const saved = loadSaved(settings.dir);
  if (saved && saved.notAfter.getTime() > Date.now() + 60_000) {
    checkId(saved, settings);
    log.info({ worker_id: saved.workerId, expires_at: saved.notAfter }, 'using the certificate of an earlier join');
    return saved;
  }
  if (!settings.joinToken) {
    throw new IdentityError(
      'validation_failed',
      saved
        ? `the certificate in ${settings.dir} has expired; join again with --join TOKEN (aetherium tokens create --join)`
        : 'this worker has no identity: give it a join token (--join TOKEN, from `aetherium tokens create --join`) or certificate files (worker.tls)',
    );
  }
  return join_(settings, log);
}

function checkId(identity: WorkerIdentity, settings: IdentitySettings): void {
  if (settings.configuredId && identity.workerId !== settings.workerId)
    throw new IdentityError(
      'validation_failed',
      `the certificate is for worker ${identity.workerId}, but worker.id is ${settings.workerId}`,
    );
}

function loadSaved(dir: string): WorkerIdentity | null {
  const paths = Object.values(FILES).map((f) => join(dir, f));
  if (!paths.every((p) => existsSync(p))) return null;
  const [ca, cert, key] = paths.map((p) => readFileSync(p, 'utf8')) as [string, string, string];
  return fromPems(ca, cert, key, dir);
}

/** Writes the identity files: the key 0600, each file replaced whole (written aside, renamed). */
export function saveIdentity(dir: string, pems: { ca: string; cert: string; key: string }): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const [name, file] of Object.entries(FILES) as [keyof typeof FILES, string][]) {
    const path = join(dir, file);
    const aside = `${path}.tmp-${process.pid}`;
    writeFileSync(aside, pems[name], { mode: name === 'key' ? 0o600 : 0o644 });
    if (name === 'key') chmodSync(aside, 0o600);
    renameSync(aside, path);
  }
}

async function join_(settings: IdentitySettings, log: Logger): Promise<WorkerIdentity> {
  const token = parseJoinToken(settings.joinToken as string);
  const { keyPem, csrPem } = await createKeyAndCsr(settings.workerId);
  let lastError: unknown = null;
  for (const server of settings.servers) {
    try {
      const ca = await pinnedCa(server, token.caFingerprint);
      const answer = await postJson<JoinResponse>(server, AGENT_PATHS.join, ca, {
        token: settings.joinToken,
        worker_id: settings.workerId,
        csr: csrPem,
      });
      saveIdentity(settings.dir, { ca, cert: answer.certificate, key: keyPem });
      const identity = fromPems(ca, answer.certificate, keyPem, settings.dir);
      log.info({ worker_id: identity.workerId, server, expires_at: identity.notAfter }, 'joined the cluster');
      return identity;
    } catch (err) {
      if (err instanceof IdentityError) throw err;
      lastError = err;
      log.warn({ server, err: errorMessage(err) }, 'join failed on this server');
    }
  }
  throw new IdentityError(
    'unavailable',
    `could not join through ${settings.servers.join(', ')}: ${errorMessage(lastError)}`,
  );
}

/**
 * The control plane's CA, trusted only once it matches the token's pin and has signed the
 * certificate the server presented for `server.aetherium`: the token goes to no one else.
 */
async function pinnedCa(server: string, fingerprint: string): Promise<string> {
  const answer = await agentRequest(server, 'GET', AGENT_PATHS.ca, { pinned: null });
  if (answer.status !== 200)
    throw new Error(`GET ${AGENT_PATHS.ca} answered ${answer.status}: ${answer.text.slice(0, 300)}`);
  const ca = (JSON.parse(answer.text) as { ca: string }).ca;
  const got = caFingerprint(ca);
  if (got !== fingerprint)
    throw new IdentityError(
      'unauthorized',
      `the control plane at ${server} shows a CA (${got}) that is not the one the join token names (${fingerprint}): refusing to send the token`,
    );
  const caCert = new X509Certificate(ca);
  const serverCert = new X509Certificate(answer.peer as Buffer);
  if (!serverCert.verify(caCert.publicKey) || !serverCert.checkHost(SERVER_NAME))
    throw new IdentityError(
      'unauthorized',
      `the control plane at ${server} presented a certificate not issued by the pinned CA for ${SERVER_NAME}`,
    );
  return ca;
}

async function postJson<T>(server: string, path: string, ca: string, body: unknown): Promise<T> {
  const answer = await agentRequest(server, 'POST', path, { pinned: ca, body: JSON.stringify(body) });
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(answer.text);
  } catch {
    /* reported below */
  }
  if (answer.status < 300 && parsed) return parsed as T;
  const message = (parsed as { error?: { message?: string } } | null)?.error?.message ?? answer.text.slice(0, 300);
  // A refused token is final: trying the next server cannot help.
  if (answer.status === 401 || answer.status === 409 || answer.status === 400)
    throw new IdentityError('unauthorized', message);
  throw new Error(`${path} answered ${answer.status}: ${message}`);
}

/**
 * One HTTPS request to an agent port, before the worker has a certificate. `pinned: null` trusts
 * no CA yet (the caller checks the certificate it gets back, `peer`); otherwise that CA only.
 */
function agentRequest(
  server: string,
  method: 'GET' | 'POST',
  path: string,
  options: { pinned: string | null; body?: string },
): Promise<{ status: number; text: string; peer: Buffer | null }> {
  const [host, port] = splitHostPort(server);
  const trust = options.pinned === null ? { rejectUnauthorized: false } : { ca: options.pinned };
  const headers = options.body
    ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(options.body) }
    : undefined;
  return new Promise((resolve, reject) => {
    const req = request(
      { host, port, path, method, servername: SERVER_NAME, timeout: 10_000, ...trust, ...(headers ? { headers } : {}) },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate()?.raw ?? null;
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text, peer }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end(options.body);
  });
}

export function splitHostPort(server: string): [string, number] {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(server);
  if (!match) throw new IdentityError('validation_failed', `worker.servers: "${server}" is not host:port`);
  return [match[1] as string, Number(match[2])];
}

/**
 * When to renew: two thirds into the certificate's lifetime, counted from when it was issued
 * (its `notBefore` is set back for clock skew; counting from there would renew a short-lived
 * certificate as soon as it arrives).
 */
export function renewAt(identity: Pick<WorkerIdentity, 'notBefore' | 'notAfter'>): Date {
  const start = Math.min(issuedAt(identity.notBefore).getTime(), identity.notAfter.getTime());
  return new Date(start + ((identity.notAfter.getTime() - start) * 2) / 3);
}
