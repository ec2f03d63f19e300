/**
 * The cluster's certificate authority: one self-signed ECDSA CA that signs the server and worker
 * certificates of the agent channel, in the manner of `nomad tls ca create`. It may sign only leaf
 * certificates (pathLen 0, and every leaf is CA:FALSE): no certificate it signs can sign others.
 * Its fingerprint, `sha256:` + hex of the certificate's DER, is the pin a joining worker checks the
 * server's CA against before trusting it.
 */
import { createHash, X509Certificate as NodeX509Certificate } from 'node:crypto';
import { invalid } from '../../domain/index.ts';
import { PkiFileError, readPemFile } from './files.ts';
import {
  type CryptoKey,
  generateKeyPair,
  importSigningKey,
  privateKeyToPem,
  randomSerial,
  SIGNING_ALGORITHM,
} from './keys.ts';
import { lifetimeMs, validityWindow } from './validity.ts';
import { x509 } from './x509.ts';

export const DEFAULT_CA_COMMON_NAME = 'Aetherium Agent CA';
export const DEFAULT_CA_DAYS = 5 * 365;

export interface CreateCaOptions {
  commonName?: string;
  /** Validity in days (default 5 years). */
  days?: number;
}

export interface CaPem {
  certPem: string;
  keyPem: string;
}

/** A CA ready to sign: its certificate, parsed, and its private key. */
export interface CertificateAuthority {
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly signingKey: CryptoKey;
  /** `sha256:<hex of the DER>`. */
  readonly fingerprint: string;
}

export async function createCa(options: CreateCaOptions = {}): Promise<CaPem> {
  const commonName = options.commonName ?? DEFAULT_CA_COMMON_NAME;
  if (!commonName.trim()) throw invalid('the CA common name must not be empty');
  const { notBefore, notAfter } = validityWindow(lifetimeMs({ days: options.days }, DEFAULT_CA_DAYS));
  const keys = await generateKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // The JSON form, not "CN=…": a common name with a comma or "=" stays one attribute.
    name: [{ CN: [commonName] }],
    notBefore,
    notAfter,
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: privateKeyToPem(keys.privateKey) };
}

/** `sha256:` + lowercase hex of the certificate's DER bytes (not of the PEM text). */
export function caFingerprint(certPem: string): string {
  const der = new NodeX509Certificate(certPem).raw;
  return `sha256:${createHash('sha256').update(der).digest('hex')}`;
}

/** A CA from its PEM texts; `names` say what to call each in an error (a file name, say). */
export async function parseCa(
  certPem: string,
  keyPem: string,
  names: { cert: string; key: string } = { cert: 'the CA certificate', key: 'the CA key' },
): Promise<CertificateAuthority> {
  let nodeCert: NodeX509Certificate;
  let cert: x509.X509Certificate;
  try {
    nodeCert = new NodeX509Certificate(certPem);
    cert = new x509.X509Certificate(certPem);
  } catch (err) {
    throw new CaError('cert', `${names.cert} is not a PEM certificate: ${(err as Error).message}`);
  }
  const constraints = cert.getExtension(x509.BasicConstraintsExtension);
  if (!nodeCert.ca || !constraints?.ca) throw new CaError('cert', `${names.cert} is not a CA certificate`);
  let key: Awaited<ReturnType<typeof importSigningKey>>;
  try {
    key = await importSigningKey(keyPem);
  } catch (err) {
    throw new CaError('key', `${names.key} is not a usable private key: ${(err as Error).message}`);
  }
  if (!nodeCert.checkPrivateKey(key.keyObject)) {
    throw new CaError('key', `${names.key} is not the private key of ${names.cert}`);
  }
  return { certPem: cert.toString('pem'), cert, signingKey: key.cryptoKey, fingerprint: caFingerprint(certPem) };
}

/** A CA from its certificate and key files; every error names the file at fault. */
export async function loadCa(certFile: string, keyFile: string): Promise<CertificateAuthority> {
  const certPem = await readPemFile(certFile, 'the CA certificate');
  const keyPem = await readPemFile(keyFile, 'the CA key');
  try {
    return await parseCa(certPem, keyPem, { cert: `the CA certificate ${certFile}`, key: `the CA key ${keyFile}` });
  } catch (err) {
    if (!(err instanceof CaError)) throw err;
    throw new PkiFileError(err.part === 'cert' ? certFile : keyFile, err.message, 'invalid');
  }
}

/** Which half of a CA failed to load, so loadCa can name the file. */
class CaError extends Error {
  constructor(
    readonly part: 'cert' | 'key',
    message: string,
  ) {
    super(message);
    this.name = 'CaError';
  }
}
