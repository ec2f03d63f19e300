/**
 * Certificate signing requests, for a worker that joins with a token: it makes its key pair on its
 * own host and sends only a CSR, so the private key never crosses the network. The signer takes
 * nothing from the CSR but its public key, and only once the CSR's self-signature proves the
 * requester holds the matching private key: the identity written is the one the control plane
 * chose, whatever subject or extensions the CSR asks for.
 */
import { createPublicKey } from 'node:crypto';
import { AetheriumError, identityUri, invalid, WORKER_ID_PATTERN } from '../../domain/index.ts';
import type { IssuedCertificate } from '../../ports/node-ca.ts';
import type { CertificateAuthority } from './ca.ts';
import { signWorkerKey } from './certificates.ts';
import { generateKeyPair, privateKeyToPem, SIGNING_ALGORITHM } from './keys.ts';
import { x509 } from './x509.ts';

/** The curves a CSR's key may use: what Node's TLS and OpenSSL support for ECDSA certificates. */
const ACCEPTED_CURVES = new Set(['prime256v1', 'secp384r1']);

/** A new key pair and a CSR for it, made on the worker's host. */
export async function createKeyAndCsr(workerId: string): Promise<{ keyPem: string; csrPem: string }> {
  if (!WORKER_ID_PATTERN.test(workerId)) throw invalid(`${JSON.stringify(workerId)} is not a worker id`);
  const keys = await generateKeyPair();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    // What it asks for is only a hint for whoever reads the CSR: the signer ignores both.
    name: [{ CN: [workerId] }],
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: identityUri({ kind: 'worker', id: workerId }) }]),
    ],
    signingAlgorithm: SIGNING_ALGORITHM,
    keys,
  });
  return { keyPem: privateKeyToPem(keys.privateKey), csrPem: csr.toString('pem') };
}

/**
 * Signs the CSR's public key into a worker certificate for `workerId`, valid for `ttlMs`. Throws
 * `bad_request` when the CSR does not parse, its key is not ECDSA P-256 or P-384, or its
 * self-signature does not verify; `validation_failed` for a bad worker id or ttl.
 */
export async function signCsr(
  ca: CertificateAuthority,
  csrPem: string,
  workerId: string,
  ttlMs: number,
): Promise<IssuedCertificate> {
  const publicKey = await verifiedCsrKey(csrPem);
  return signWorkerKey(ca, workerId, publicKey, ttlMs);
}

async function verifiedCsrKey(csrPem: string): Promise<x509.PublicKey> {
  let csr: x509.Pkcs10CertificateRequest;
  try {
    csr = new x509.Pkcs10CertificateRequest(csrPem.trim());
  } catch (err) {
    throw badRequest(`the certificate signing request does not parse: ${(err as Error).message}`);
  }
  let curve: string | undefined;
  try {
    const key = createPublicKey({ key: Buffer.from(csr.publicKey.rawData), format: 'der', type: 'spki' });
    curve = key.asymmetricKeyType === 'ec' ? key.asymmetricKeyDetails?.namedCurve : undefined;
  } catch {
    curve = undefined; // a key OpenSSL cannot read is refused below like any other
  }
  if (!curve || !ACCEPTED_CURVES.has(curve)) {
    throw badRequest('the certificate signing request must be for an ECDSA P-256 or P-384 key');
  }
  // verify() throws for a signature it cannot even decode, and returns false for a wrong one.
  const verified = await csr.verify().catch(() => false);
  if (!verified) throw badRequest('the signature of the certificate signing request does not verify');
  return csr.publicKey;
}

function badRequest(message: string): AetheriumError {
  return new AetheriumError('bad_request', message);
}
