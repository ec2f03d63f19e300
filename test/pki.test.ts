/**
 * The cluster PKI, checked with tools that did not make the certificates: Node's X509Certificate,
 * a real mutual-TLS handshake over node:tls, and `openssl verify`. Then `aetherium tls …` end to
 * end in a temporary directory.
 */
import { execFileSync } from 'node:child_process';
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { caFingerprint, createCa, loadCa, parseCa, type CertificateAuthority } from '../src/adapters/pki/ca.ts';
import { issueServerCert, issueWorkerCert, type IssuedKeyPair } from '../src/adapters/pki/certificates.ts';
import { createKeyAndCsr, signCsr } from '../src/adapters/pki/csr.ts';
import { PkiFileError } from '../src/adapters/pki/files.ts';
import { generateKeyPair, privateKeyToPem, SIGNING_ALGORITHM } from '../src/adapters/pki/keys.ts';
import { LocalNodeCertificateAuthority } from '../src/adapters/pki/node-ca.ts';
import { x509 } from '../src/adapters/pki/x509.ts';
import { AetheriumError } from '../src/domain/errors.ts';
import { identityFromAltNames, SERVER_NAME } from '../src/domain/node-identity.ts';
import { runCli } from './harness/processes.ts';

const DAY_MS = 24 * 60 * 60 * 1000;

let dir: string;
let caPem: { certPem: string; keyPem: string };
let ca: CertificateAuthority;
let server: IssuedKeyPair;
let worker: IssuedKeyPair;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'aetherium-pki-'));
  caPem = await createCa();
  ca = await parseCa(caPem.certPem, caPem.keyPem);
  server = await issueServerCert(ca, { dnsNames: ['cp-1.example.internal'], ipAddresses: ['10.0.0.7'] });
  worker = await issueWorkerCert(ca, 'worker-7');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const validFrom = (cert: X509Certificate) => Date.parse(cert.validFrom);
const validTo = (cert: X509Certificate) => Date.parse(cert.validTo);
const caPublicKey = () => new X509Certificate(caPem.certPem).publicKey;

/** `openssl verify` of `certPem` against the CA; returns its output, throws if it refuses. */
function opensslVerify(certPem: string, caCertPem = caPem.certPem): string {
  const caFile = join(dir, `ca-${Math.random().toString(36).slice(2)}.pem`);
  const certFile = join(dir, `cert-${Math.random().toString(36).slice(2)}.pem`);
  writeFileSync(caFile, caCertPem);
  writeFileSync(certFile, certPem);
  return execFileSync('openssl', ['verify', '-CAfile', caFile, certFile], { stdio: 'pipe' }).toString();
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AetheriumError);
  expect((err as AetheriumError).code).toBe(code);
}

describe('the CA', () => {
  it('is a self-signed ECDSA P-256 CA that may sign only leaves, valid five years', () => {
    const cert = new X509Certificate(caPem.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=Aetherium Agent CA');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    expect(validTo(cert) - Date.now()).toBeGreaterThan(5 * 365 * DAY_MS - 5000);
    expect(validTo(cert) - Date.now()).toBeLessThanOrEqual(5 * 365 * DAY_MS);
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: caPem.certPem }).toString();
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(text).toMatch(/Key Usage: critical\s+Certificate Sign, CRL Sign/);
    expect(text).toContain('ecdsa-with-SHA256');
  });

  it('writes its key as PKCS#8 PEM', () => {
    expect(caPem.keyPem.startsWith('-----BEGIN PRIVATE KEY-----\n')).toBe(true);
  });

  it('takes another common name and lifetime', async () => {
    const other = await createCa({ commonName: 'Lab, CA=1', days: 10 });
    const cert = new X509Certificate(other.certPem);
    // One attribute whose value holds a comma, not CN=Lab plus CA=1.
    expect(cert.subject).toBe('CN=Lab\\, CA=1');
    expect(validTo(cert) - Date.now()).toBeLessThanOrEqual(10 * DAY_MS);
    expect(validTo(cert) - Date.now()).toBeGreaterThan(10 * DAY_MS - 5000);
  });

  it('has a fingerprint of its DER bytes, the one openssl computes', () => {
    const out = execFileSync('openssl', ['x509', '-noout', '-fingerprint', '-sha256'], {
      input: caPem.certPem,
    }).toString();
    const hex = out.trim().split('=')[1]!.replaceAll(':', '').toLowerCase();
    expect(caFingerprint(caPem.certPem)).toBe(`sha256:${hex}`);
    expect(ca.fingerprint).toBe(`sha256:${hex}`);
  });
});

describe('loading a CA from files', () => {
  it('loads a CA written to files', async () => {
    writeFileSync(join(dir, 'ca.pem'), caPem.certPem);
    writeFileSync(join(dir, 'ca-key.pem'), caPem.keyPem);
    const loaded = await loadCa(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'));
    expect(loaded.fingerprint).toBe(ca.fingerprint);
    const issued = await issueWorkerCert(loaded, 'w-from-files');
    expect(new X509Certificate(issued.certPem).verify(caPublicKey())).toBe(true);
  });

  it('names the missing file', async () => {
    const missing = join(dir, 'no-such-ca.pem');
    const err = await loadCa(missing, join(dir, 'ca-key.pem')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PkiFileError);
    expect((err as PkiFileError).file).toBe(missing);
    expect((err as PkiFileError).message).toContain(`${missing} does not exist`);
  });

  it('names a file that is not a certificate', async () => {
    writeFileSync(join(dir, 'garbage.pem'), 'not a certificate\n');
    const err = await loadCa(join(dir, 'garbage.pem'), join(dir, 'ca-key.pem')).catch((e: unknown) => e);
    expect((err as PkiFileError).file).toBe(join(dir, 'garbage.pem'));
    expect((err as PkiFileError).message).toContain('is not a PEM certificate');
  });

  it('refuses a key that is not the CA certificate’s', async () => {
    writeFileSync(join(dir, 'other-key.pem'), (await createCa()).keyPem);
    const err = await loadCa(join(dir, 'ca.pem'), join(dir, 'other-key.pem')).catch((e: unknown) => e);
    expect((err as PkiFileError).file).toBe(join(dir, 'other-key.pem'));
    expect((err as PkiFileError).message).toMatch(/other-key\.pem is not the private key of the CA certificate/);
  });

  it('refuses a leaf certificate as a CA', async () => {
    writeFileSync(join(dir, 'leaf.pem'), server.certPem);
    writeFileSync(join(dir, 'leaf-key.pem'), server.keyPem);
    const err = await loadCa(join(dir, 'leaf.pem'), join(dir, 'leaf-key.pem')).catch((e: unknown) => e);
    expect((err as PkiFileError).message).toContain('is not a CA certificate');
  });
});

describe('the server certificate', () => {
  it('is signed by the CA and names the server role and its addresses', () => {
    const cert = new X509Certificate(server.certPem);
    expect(cert.issuer).toBe('CN=Aetherium Agent CA');
    expect(cert.ca).toBe(false);
    expect(cert.verify(caPublicKey())).toBe(true);
    expect(cert.checkHost(SERVER_NAME)).toBe(SERVER_NAME);
    expect(cert.checkHost('localhost')).toBe('localhost');
    expect(cert.checkHost('cp-1.example.internal')).toBe('cp-1.example.internal');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkIP('10.0.0.7')).toBe('10.0.0.7');
    expect(cert.checkHost('elsewhere.example')).toBeUndefined();
    expect(identityFromAltNames(cert.subjectAltName)).toEqual({ kind: 'server' });
    expect(cert.serialNumber.toLowerCase()).toBe(server.serial);
    expect(server.serial).toMatch(/^[0-7][0-9a-f]{31}$/);
  });

  it('may serve and dial, and lasts a year from a minute ago', () => {
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: server.certPem }).toString();
    expect(text).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication, TLS Web Client Authentication/);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
    const cert = new X509Certificate(server.certPem);
    expect(Date.now() - validFrom(cert)).toBeGreaterThanOrEqual(60_000);
    expect(Date.now() - validFrom(cert)).toBeLessThan(65_000);
    expect(validTo(cert) - Date.now()).toBeGreaterThan(365 * DAY_MS - 5000);
    expect(validTo(cert)).toBe(server.notAfter.getTime());
    expect(validFrom(cert)).toBe(server.notBefore.getTime());
  });

  it('refuses an extra name that is not a DNS name or an IP address', async () => {
    await expectCode(issueServerCert(ca, { dnsNames: ['bad name'] }), 'validation_failed');
    await expectCode(issueServerCert(ca, { ipAddresses: ['10.0.0.300'] }), 'validation_failed');
  });

  it('passes openssl verify', () => {
    expect(opensslVerify(server.certPem)).toContain(': OK');
  });
});

describe('the worker certificate', () => {
  it('names exactly one worker and can only dial', () => {
    const cert = new X509Certificate(worker.certPem);
    expect(cert.subject).toBe('CN=worker-7');
    expect(cert.subjectAltName).toBe('URI:spiffe://aetherium/worker/worker-7');
    expect(identityFromAltNames(cert.subjectAltName)).toEqual({ kind: 'worker', id: 'worker-7' });
    expect(cert.verify(caPublicKey())).toBe(true);
    expect(cert.checkHost(SERVER_NAME)).toBeUndefined();
    const text = execFileSync('openssl', ['x509', '-noout', '-text'], { input: worker.certPem }).toString();
    expect(text).toMatch(/Extended Key Usage:\s+TLS Web Client Authentication\n/);
  });

  it('passes openssl verify, and fails it against another CA', async () => {
    expect(opensslVerify(worker.certPem)).toContain(': OK');
    const other = await createCa();
    expect(() => opensslVerify(worker.certPem, other.certPem)).toThrow();
  });

  it('refuses an id that is not a worker id', async () => {
    await expectCode(issueWorkerCert(ca, 'no/slashes'), 'validation_failed');
    await expectCode(issueWorkerCert(ca, ''), 'validation_failed');
    await expectCode(issueWorkerCert(ca, 'ok', { ttlMs: 0 }), 'validation_failed');
  });

  it('can be short-lived: ttlMs 2000 ends about two seconds from now', async () => {
    const before = Date.now();
    const issued = await issueWorkerCert(ca, 'brief', { ttlMs: 2000 });
    const cert = new X509Certificate(issued.certPem);
    // Whole seconds in X.509: at most 2 s, and more than 1 s, after the moment of signing.
    expect(validTo(cert) - before).toBeGreaterThan(900);
    expect(validTo(cert) - Date.now()).toBeLessThanOrEqual(2000);
    expect(issued.notAfter.getTime()).toBe(validTo(cert));
  });

  it('certifies a key the caller brings, returning no private key', async () => {
    const keys = await generateKeyPair();
    const issued = await issueWorkerCert(ca, 'bring-your-own', { publicKey: keys.publicKey });
    expect('keyPem' in issued).toBe(false);
    const cert = new X509Certificate(issued.certPem);
    expect(cert.checkPrivateKey(createPrivateKey(privateKeyToPem(keys.privateKey)))).toBe(true);
  });

  it('never outlives its CA', async () => {
    const pem = await createCa({ days: 1 });
    const shortCa = await parseCa(pem.certPem, pem.keyPem);
    const issued = await issueWorkerCert(shortCa, 'w', { days: 30 });
    expect(issued.notAfter.getTime()).toBe(shortCa.cert.notAfter.getTime());
  });
});

/** A TLS server like the agent channel's: it demands a client certificate from the CA. */
async function agentServer(): Promise<{
  port: number;
  close: () => Promise<void>;
  accepted: Promise<string | undefined>;
  acceptedCount: () => number;
  /** Why the server refused a client: the verification error of its certificate. */
  refused: Promise<string | undefined>;
}> {
  let accept!: (altNames: string | undefined) => void;
  let refuse!: (reason: string | undefined) => void;
  const accepted = new Promise<string | undefined>((resolve) => (accept = resolve));
  const refused = new Promise<string | undefined>((resolve) => (refuse = resolve));
  let count = 0;
  const srv = tls.createServer(
    { cert: server.certPem, key: server.keyPem, ca: caPem.certPem, requestCert: true, rejectUnauthorized: true },
    (socket) => {
      count += 1;
      accept(socket.getPeerCertificate().subjectaltname);
      socket.end('hello\n');
    },
  );
  // Node checks the client's chain when the handshake ends and drops a client that fails, before
  // any 'secureConnection': the socket's authorizationError says why.
  srv.on('tlsClientError', (err, socket) => refuse(socket.authorizationError?.toString() ?? err.message));
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as AddressInfo;
  return {
    port,
    accepted,
    acceptedCount: () => count,
    refused,
    close: () => new Promise((resolve) => srv.close(() => resolve())),
  };
}

/** Dials 127.0.0.1 as a worker does: verifying `server.aetherium`, whatever address it dialled. */
function dial(port: number, client: { certPem: string; keyPem: string }, trust = caPem.certPem): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: SERVER_NAME,
      ca: trust,
      cert: client.certPem,
      key: client.keyPem,
    });
    let data = '';
    socket.on('data', (chunk) => (data += chunk));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
  });
}

describe('mutual TLS with these certificates', () => {
  it('lets a worker in, and the server reads the worker id from its certificate', async () => {
    const srv = await agentServer();
    try {
      expect(await dial(srv.port, worker)).toBe('hello\n');
      const altNames = await srv.accepted;
      expect(identityFromAltNames(altNames)).toEqual({ kind: 'worker', id: 'worker-7' });
    } finally {
      await srv.close();
    }
  });

  it('refuses at the handshake a client certificate from another CA', async () => {
    const otherPem = await createCa({ commonName: 'Aetherium Agent CA' });
    const impostor = await issueWorkerCert(await parseCa(otherPem.certPem, otherPem.keyPem), 'worker-7');
    const srv = await agentServer();
    try {
      const outcome = await dial(srv.port, impostor).then(
        (data) => `read ${JSON.stringify(data)}`,
        (err: Error) => err.message,
      );
      expect(outcome).not.toBe('read "hello\\n"');
      expect(await srv.refused).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
      expect(srv.acceptedCount()).toBe(0);
    } finally {
      await srv.close();
    }
  });

  it('a worker certificate cannot pose as the server', async () => {
    const srv = tls.createServer({ cert: worker.certPem, key: worker.keyPem }, (socket) => socket.end('hi\n'));
    await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = srv.address() as AddressInfo;
      const err = await dial(port, worker).catch((e: NodeJS.ErrnoException) => e);
      // Refused for its extended key usage (clientAuth only), before its names are even looked at.
      expect((err as NodeJS.ErrnoException).code).toBe('INVALID_PURPOSE');
    } finally {
      await new Promise((resolve) => srv.close(resolve));
    }
  });
});

describe('signing a CSR', () => {
  it('writes the identity the signer chose, whatever the CSR asks for', async () => {
    const { keyPem, csrPem } = await createKeyAndCsr('i-would-like-this-id');
    expect(keyPem.startsWith('-----BEGIN PRIVATE KEY-----')).toBe(true);
    expect(csrPem.startsWith('-----BEGIN CERTIFICATE REQUEST-----')).toBe(true);
    const issued = await signCsr(ca, csrPem, 'worker-chosen', 60_000);
    const cert = new X509Certificate(issued.certPem);
    expect(identityFromAltNames(cert.subjectAltName)).toEqual({ kind: 'worker', id: 'worker-chosen' });
    expect(cert.subject).toBe('CN=worker-chosen');
    expect(cert.checkPrivateKey(createPrivateKey(keyPem))).toBe(true);
    expect(opensslVerify(issued.certPem)).toContain(': OK');
    // And the key stays on the worker's host: the pair works for the handshake.
    const srv = await agentServer();
    try {
      expect(await dial(srv.port, { certPem: issued.certPem, keyPem })).toBe('hello\n');
      expect(identityFromAltNames(await srv.accepted)).toEqual({ kind: 'worker', id: 'worker-chosen' });
    } finally {
      await srv.close();
    }
  });

  it('ignores a CSR that asks to be the server', async () => {
    const keys = await generateKeyPair();
    const csr = await x509.Pkcs10CertificateRequestGenerator.create({
      name: [{ CN: [SERVER_NAME] }],
      extensions: [
        new x509.SubjectAlternativeNameExtension([
          { type: 'dns', value: SERVER_NAME },
          { type: 'url', value: 'spiffe://aetherium/server' },
        ]),
        new x509.BasicConstraintsExtension(true, undefined, true),
      ],
      signingAlgorithm: SIGNING_ALGORITHM,
      keys,
    });
    const cert = new X509Certificate((await signCsr(ca, csr.toString('pem'), 'w-9', 60_000)).certPem);
    expect(cert.subjectAltName).toBe('URI:spiffe://aetherium/worker/w-9');
    expect(cert.checkHost(SERVER_NAME)).toBeUndefined();
    expect(cert.ca).toBe(false);
  });

  it('refuses a tampered CSR', async () => {
    const { csrPem } = await createKeyAndCsr('victim');
    const der = Buffer.from(x509.PemConverter.decodeFirst(csrPem));
    const at = der.indexOf('victim');
    expect(at).toBeGreaterThan(0);
    der[at] = 'V'.charCodeAt(0); // a changed subject: the self-signature no longer covers it
    const tampered = x509.PemConverter.encode(der, 'CERTIFICATE REQUEST');
    await expectCode(signCsr(ca, tampered, 'victim', 60_000), 'bad_request');
  });

  it('refuses garbage', async () => {
    await expectCode(signCsr(ca, 'not a csr', 'w', 60_000), 'bad_request');
    await expectCode(signCsr(ca, caPem.certPem, 'w', 60_000), 'bad_request');
  });

  it('refuses a bad worker id even for a good CSR', async () => {
    const { csrPem } = await createKeyAndCsr('ok');
    await expectCode(signCsr(ca, csrPem, '../etc', 60_000), 'validation_failed');
  });

  it('is what the NodeCertificateAuthority port does', async () => {
    const nodeCa = await LocalNodeCertificateAuthority.fromFiles(join(dir, 'ca.pem'), join(dir, 'ca-key.pem'));
    expect(nodeCa.fingerprint).toBe(ca.fingerprint);
    expect(nodeCa.caPem.trim()).toBe(caPem.certPem.trim());
    const { csrPem } = await createKeyAndCsr('n1');
    const issued = await nodeCa.signWorker(csrPem, 'n1', 3_600_000);
    expect(identityFromAltNames(new X509Certificate(issued.certPem).subjectAltName)).toEqual({
      kind: 'worker',
      id: 'n1',
    });
    expect(issued.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(3_600_000);
    expect(issued.notAfter.getTime() - Date.now()).toBeGreaterThan(3_600_000 - 5000);
    await expectCode(nodeCa.signWorker('garbage', 'n1', 1000), 'bad_request');
  });
});

describe('aetherium tls', () => {
  let out: string;
  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'aetherium-tls-cli-'));
  });
  afterAll(() => rmSync(out, { recursive: true, force: true }));

  const mode = (file: string) => statSync(join(out, file)).mode & 0o777;

  it('ca create writes the CA and its key (0600) and prints the fingerprint', async () => {
    const r = await runCli(['tls', 'ca', 'create', '--dir', out]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const certPem = readFileSync(join(out, 'aetherium-agent-ca.pem'), 'utf8');
    expect(new X509Certificate(certPem).ca).toBe(true);
    expect(r.stdout).toContain(join(out, 'aetherium-agent-ca.pem'));
    expect(r.stdout).toContain(join(out, 'aetherium-agent-ca-key.pem'));
    expect(r.stdout).toContain(caFingerprint(certPem));
    expect(mode('aetherium-agent-ca-key.pem')).toBe(0o600);
  });

  it('refuses to replace the CA without --force, and replaces it with', async () => {
    const before = readFileSync(join(out, 'aetherium-agent-ca.pem'), 'utf8');
    const refused = await runCli(['tls', 'ca', 'create', '--dir', out]);
    expect(refused.code).toBe(6);
    expect(refused.stderr).toContain('already exists; pass --force');
    expect(readFileSync(join(out, 'aetherium-agent-ca.pem'), 'utf8')).toBe(before);
    const forced = await runCli(['tls', 'ca', 'create', '--dir', out, '--force', '--common-name', 'Test CA']);
    expect(forced.code).toBe(0);
    const after = new X509Certificate(readFileSync(join(out, 'aetherium-agent-ca.pem'), 'utf8'));
    expect(after.subject).toBe('CN=Test CA');
    expect(mode('aetherium-agent-ca-key.pem')).toBe(0o600);
  });

  it('cert create --server writes a server certificate the CA verifies', async () => {
    const r = await runCli([
      'tls',
      'cert',
      'create',
      '--server',
      '--dir',
      out,
      '--additional-dnsname',
      'cp.example',
      '--additional-dnsname',
      'cp2.example',
      '--additional-ipaddress',
      '192.0.2.1',
      '--days',
      '30',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const cert = new X509Certificate(readFileSync(join(out, 'server-aetherium.pem'), 'utf8'));
    expect(cert.subjectAltName).toBe(
      'DNS:server.aetherium, DNS:localhost, DNS:cp.example, DNS:cp2.example, IP Address:127.0.0.1, IP Address:192.0.2.1, URI:spiffe://aetherium/server',
    );
    expect(r.stdout).toContain(`expires: ${new Date(validTo(cert)).toISOString()}`);
    expect(validTo(cert) - Date.now()).toBeLessThanOrEqual(30 * DAY_MS);
    expect(mode('server-aetherium-key.pem')).toBe(0o600);
    const caCert = readFileSync(join(out, 'aetherium-agent-ca.pem'), 'utf8');
    expect(opensslVerify(readFileSync(join(out, 'server-aetherium.pem'), 'utf8'), caCert)).toContain(': OK');
  });

  it('cert create --worker writes a worker certificate for that id', async () => {
    const r = await runCli([
      'tls',
      'cert',
      'create',
      '--worker',
      'w-42',
      '--ca',
      join(out, 'aetherium-agent-ca.pem'),
      '--key',
      join(out, 'aetherium-agent-ca-key.pem'),
      '--dir',
      out,
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const certPem = readFileSync(join(out, 'worker-w-42.pem'), 'utf8');
    expect(identityFromAltNames(new X509Certificate(certPem).subjectAltName)).toEqual({ kind: 'worker', id: 'w-42' });
    expect(mode('worker-w-42-key.pem')).toBe(0o600);
    expect(opensslVerify(certPem, readFileSync(join(out, 'aetherium-agent-ca.pem'), 'utf8'))).toContain(': OK');
    const again = await runCli(['tls', 'cert', 'create', '--worker', 'w-42', '--dir', out]);
    expect(again.code).toBe(6);
    expect(again.stderr).toContain('worker-w-42.pem already exists');
  });

  it('wants exactly one of --server and --worker: exit code 2', async () => {
    const neither = await runCli(['tls', 'cert', 'create', '--dir', out]);
    expect(neither.code).toBe(2);
    expect(neither.stderr).toContain('exactly one of --server or --worker');
    const both = await runCli(['tls', 'cert', 'create', '--server', '--worker', 'w', '--dir', out]);
    expect(both.code).toBe(2);
  });

  it('says which CA file is missing, with exit code 2', async () => {
    const r = await runCli(['tls', 'cert', 'create', '--worker', 'w', '--dir', join(out, 'nowhere')]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${join(out, 'nowhere', 'aetherium-agent-ca.pem')} does not exist`);
  });
});
