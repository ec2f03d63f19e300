/**
 * Throwaway certificates for the TLS tests of the engines, made with the `openssl` CLI (what an
 * operator would use, and no new dependency): a test CA, a server certificate it signs for
 * `localhost` and `127.0.0.1` (the addresses the harness servers listen on), client certificates
 * whose CN is a user name (Postgres maps a client certificate to the database user by CN), and a
 * second, unrelated CA for the "wrong CA" cases. EC P-256 keys: quick to make, accepted by
 * Postgres, Redis, etcd (Go) and Node alike. Everything lives in one temp folder; `remove()`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export interface KeyPair {
  /** PEM certificate file. */
  cert: string;
  /** PEM private key file (PKCS#8, unencrypted). */
  key: string;
}

export interface TestCertificates {
  dir: string;
  /** The test CA's certificate: what clients and servers trust. */
  ca: string;
  /** Signed by `ca` for DNS:localhost and IP:127.0.0.1. */
  server: KeyPair;
  /** Client certificates signed by `ca`, by CN (the `clients` asked for). */
  clients: Record<string, KeyPair>;
  /** A CA that signed nothing here: trusting it instead of `ca` must fail every handshake. */
  otherCa: string;
  remove(): Promise<void>;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  try {
    await run('openssl', args, { cwd });
  } catch (err) {
    const e = err as { code?: string; stderr?: string; message: string };
    if (e.code === 'ENOENT') throw new Error('openssl not found on PATH (Debian: apt-get install openssl)');
    throw new Error(`openssl ${args[0]} failed: ${e.stderr?.trim() || e.message}`);
  }
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-noenc'];

async function makeCa(dir: string, name: string): Promise<{ cert: string; key: string }> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  await openssl(
    [
      'req',
      '-x509',
      ...KEY,
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '2',
      '-subj',
      `/CN=Aetherium test ${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  return { cert, key };
}

async function issue(
  dir: string,
  ca: { cert: string; key: string },
  name: string,
  subject: string,
  extensions: string[],
): Promise<KeyPair> {
  const cert = join(dir, `${name}.pem`);
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const ext = join(dir, `${name}.ext`);
  await openssl(['req', '-new', ...KEY, '-keyout', key, '-out', csr, '-subj', subject], dir);
  await writeFile(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'subjectKeyIdentifier=hash',
      'authorityKeyIdentifier=keyid',
      ...extensions,
      '',
    ].join('\n'),
  );
  await openssl(
    [
      'x509',
      '-req',
      '-in',
      csr,
      '-CA',
      ca.cert,
      '-CAkey',
      ca.key,
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      ext,
      '-out',
      cert,
    ],
    dir,
  );
  return { cert, key };
}

/** Makes the CA, the server certificate and one client certificate per name (default: `postgres`). */
export async function makeTestCertificates(options: { clients?: string[] } = {}): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'aetherium-certs-'));
  try {
    const ca = await makeCa(dir, 'ca');
    const other = await makeCa(dir, 'other-ca');
    // clientAuth too: etcd's own HTTP gateway dials its gRPC port with the server certificate.
    const server = await issue(dir, ca, 'server', '/CN=localhost', [
      'extendedKeyUsage=serverAuth,clientAuth',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ]);
    const clients: Record<string, KeyPair> = {};
    for (const name of options.clients ?? ['postgres']) {
      clients[name] = await issue(dir, ca, `client-${name}`, `/CN=${name}`, ['extendedKeyUsage=clientAuth']);
    }
    return {
      dir,
      ca: ca.cert,
      server,
      clients,
      otherCa: other.cert,
      remove: () => rm(dir, { recursive: true, force: true }),
    };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
