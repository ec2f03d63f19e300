/**
 * The leaf certificates the CA signs. A server certificate names the role
 * (`spiffe://aetherium/server`) and the DNS name every worker verifies, `server.aetherium`, and may
 * both serve and dial (a replica also connects to its peers). A worker certificate names exactly one
 * worker and can only dial: with clientAuth alone and no server SANs, it can never pose as a
 * control plane. Keys are made here unless the caller brings a public key (from a CSR).
 */
import { isIP } from 'node:net';
import { identityUri, invalid, SERVER_NAME, WORKER_ID_PATTERN } from '../../domain/index.ts';
import type { IssuedCertificate } from '../../ports/node-ca.ts';
import type { CertificateAuthority } from './ca.ts';
import { type CryptoKey, generateKeyPair, privateKeyToPem, randomSerial, SIGNING_ALGORITHM } from './keys.ts';
import { type Lifetime, lifetimeMs, validityWindow } from './validity.ts';
import { x509 } from './x509.ts';

export const DEFAULT_SERVER_DAYS = 365;
export const DEFAULT_WORKER_DAYS = 365;

/** A certificate with the private key made for it. */
export interface IssuedKeyPair extends IssuedCertificate {
  /** PKCS#8 PEM. */
  keyPem: string;
}

export interface ServerCertOptions {
  /** DNS names besides `server.aetherium` and `localhost`. */
  dnsNames?: string[];
  /** IP addresses besides 127.0.0.1. */
  ipAddresses?: string[];
  days?: number;
}

export interface WorkerCertOptions extends Lifetime {
  /** Certify this key instead of making one; then no `keyPem` is returned. */
  publicKey?: CryptoKey;
}

const DNS_LABEL = '[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

export async function issueServerCert(
  ca: CertificateAuthority,
  options: ServerCertOptions = {},
): Promise<IssuedKeyPair> {
  for (const name of options.dnsNames ?? []) {
    if (name.length > 253 || !DNS_NAME.test(name)) throw invalid(`${JSON.stringify(name)} is not a DNS name`);
  }
  for (const ip of options.ipAddresses ?? []) {
    if (!isIP(ip)) throw invalid(`${JSON.stringify(ip)} is not an IP address`);
  }
  const dnsNames = unique([SERVER_NAME, 'localhost', ...(options.dnsNames ?? [])]);
  const ipAddresses = unique(['127.0.0.1', ...(options.ipAddresses ?? [])]);
  const keys = await generateKeyPair();
  const issued = await signLeaf(ca, {
    commonName: SERVER_NAME,
    altNames: [
      ...dnsNames.map((value) => ({ type: 'dns' as const, value })),
      ...ipAddresses.map((value) => ({ type: 'ip' as const, value })),
      { type: 'url', value: identityUri({ kind: 'server' }) },
    ],
    usages: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
    publicKey: keys.publicKey,
    lifetimeMs: lifetimeMs({ days: options.days }, DEFAULT_SERVER_DAYS),
  });
  return { ...issued, keyPem: privateKeyToPem(keys.privateKey) };
}

export function issueWorkerCert(
  ca: CertificateAuthority,
  workerId: string,
  options: WorkerCertOptions & { publicKey: CryptoKey },
): Promise<IssuedCertificate>;
export function issueWorkerCert(
  ca: CertificateAuthority,
  workerId: string,
  options?: WorkerCertOptions,
): Promise<IssuedKeyPair>;
export async function issueWorkerCert(
  ca: CertificateAuthority,
  workerId: string,
  options: WorkerCertOptions = {},
): Promise<IssuedCertificate | IssuedKeyPair> {
  const ms = lifetimeMs(options, DEFAULT_WORKER_DAYS);
  if (options.publicKey) return signWorkerKey(ca, workerId, options.publicKey, ms);
  const keys = await generateKeyPair();
  const issued = await signWorkerKey(ca, workerId, keys.publicKey, ms);
  return { ...issued, keyPem: privateKeyToPem(keys.privateKey) };
}

/** The worker certificate for any public key: a CryptoKey, or the key of a verified CSR. */
export async function signWorkerKey(
  ca: CertificateAuthority,
  workerId: string,
  publicKey: x509.PublicKeyType,
  ms: number,
): Promise<IssuedCertificate> {
  if (!WORKER_ID_PATTERN.test(workerId)) {
    throw invalid(`${JSON.stringify(workerId)} is not a worker id (letters, digits, ".", "_", "-"; at most 63)`);
  }
  return signLeaf(ca, {
    commonName: workerId,
    altNames: [{ type: 'url', value: identityUri({ kind: 'worker', id: workerId }) }],
    usages: [x509.ExtendedKeyUsage.clientAuth],
    publicKey,
    lifetimeMs: ms,
  });
}

interface LeafRequest {
  commonName: string;
  altNames: x509.JsonGeneralNames;
  usages: x509.ExtendedKeyUsage[];
  publicKey: x509.PublicKeyType;
  lifetimeMs: number;
}

async function signLeaf(ca: CertificateAuthority, leaf: LeafRequest): Promise<IssuedCertificate> {
  const { notBefore, notAfter } = validityWindow(leaf.lifetimeMs, ca.cert.notAfter);
  const caKeyId = ca.cert.getExtension(x509.SubjectKeyIdentifierExtension)?.keyId;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: [{ CN: [leaf.commonName] }],
    // The CA's own encoded name, so issuer and subject match byte for byte in path building.
    issuer: ca.cert.subjectName,
    notBefore,
    notAfter,
    publicKey: leaf.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(leaf.usages),
      new x509.SubjectAlternativeNameExtension(leaf.altNames),
      await x509.SubjectKeyIdentifierExtension.create(leaf.publicKey),
      caKeyId
        ? new x509.AuthorityKeyIdentifierExtension(caKeyId)
        : await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
    ],
  });
  return {
    certPem: cert.toString('pem'),
    serial: cert.serialNumber,
    notBefore: cert.notBefore,
    notAfter: cert.notAfter,
  };
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
