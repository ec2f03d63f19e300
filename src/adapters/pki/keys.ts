/**
 * Key pairs and serial numbers for the cluster's certificates. Every key is ECDSA P-256 signing
 * with SHA-256: small, fast, and accepted by every TLS stack a worker or client might use. Private
 * keys leave memory only as PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form Node's `tls` and OpenSSL
 * read without being told the algorithm.
 */
import { createPrivateKey, KeyObject, randomBytes, webcrypto } from 'node:crypto';

// The WebCrypto types, from Node's module: the project's lib has no DOM globals.
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const KEY_ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const SIGNING_ALGORITHM = { name: 'ECDSA', hash: 'SHA-256' } as const;

export async function generateKeyPair(): Promise<CryptoKeyPair> {
  // Extractable so the private key can be written out once, as PEM, by whoever asked for it.
  return (await webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
}

export function privateKeyToPem(key: CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }).toString();
}

/**
 * A signing key from PEM, as both a KeyObject (for Node's checks) and a non-extractable CryptoKey
 * (for signing). PKCS#8 and OpenSSL's SEC1 `BEGIN EC PRIVATE KEY` are both read, so a CA key made
 * with `openssl ecparam -genkey` works too; anything but a P-256 key is refused.
 */
export async function importSigningKey(pem: string): Promise<{ keyObject: KeyObject; cryptoKey: CryptoKey }> {
  const keyObject = createPrivateKey(pem);
  if (keyObject.asymmetricKeyType !== 'ec' || keyObject.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new Error(`the key is ${describeKey(keyObject)}, not an ECDSA P-256 key`);
  }
  const der = keyObject.export({ type: 'pkcs8', format: 'der' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, false, ['sign']);
  return { keyObject, cryptoKey: cryptoKey as CryptoKey };
}

function describeKey(key: KeyObject): string {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return `${key.asymmetricKeyType ?? key.type}${curve ? ` ${curve}` : ''}`;
}

/**
 * A random 16-byte serial in hex (RFC 5280 allows up to 20). The top bit is cleared so the DER
 * integer is positive without a padding byte, and the first byte is never zero so the serial keeps
 * all 16 bytes.
 */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f || 0x01;
  return bytes.toString('hex');
}
