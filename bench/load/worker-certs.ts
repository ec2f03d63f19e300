/**
 * Worker certificates in bulk, for thousands of simulated workers. The project's issuer takes
 * about 2 ms per certificate (ASN.1 in JavaScript plus WebCrypto), 20 s for 10,000 on this
 * machine, all before the first heartbeat. So one certificate is issued the normal way as a
 * template, and each worker's is that template with its id (same length) and a fresh serial put
 * in, signed again by the cluster CA with node:crypto. The result is a real certificate of the
 * cluster CA for that worker: the control plane verifies it like any other. All share one key
 * pair: the handshake costs the same whatever the key.
 */
import { createPrivateKey, type KeyObject, randomBytes, sign, X509Certificate } from 'node:crypto';
import type { CertificateAuthority } from '../../src/adapters/pki/ca.ts';
import { issueWorkerCert } from '../../src/adapters/pki/certificates.ts';
import { identityFromAltNames } from '../../src/domain/index.ts';

interface Tlv {
  start: number;
  contentStart: number;
  end: number;
}

function readTlv(der: Buffer, at: number): Tlv {
  let length = der[at + 1]!;
  let contentStart = at + 2;
  if (length & 0x80) {
    const bytes = length & 0x7f;
    length = 0;
    for (let i = 0; i < bytes; i++) length = length * 256 + der[at + 2 + i]!;
    contentStart += bytes;
  }
  return { start: at, contentStart, end: contentStart + length };
}

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  const length =
    n < 0x80 ? Buffer.from([n]) : n < 0x100 ? Buffer.from([0x81, n]) : Buffer.from([0x82, n >> 8, n & 0xff]);
  return Buffer.concat([Buffer.from([tag]), length, content]);
}

export class WorkerCertMinter {
  private constructor(
    private readonly template: { id: string; tbs: Buffer; algorithm: Buffer; serial: Tlv },
    private readonly caKey: KeyObject,
    readonly keyPem: string,
    readonly caPem: string,
  ) {}

  /** `templateId` has the length every minted id must have (e.g. `sim-00000` for `sim-NNNNN`). */
  static async create(ca: CertificateAuthority, caKeyPem: string, templateId: string): Promise<WorkerCertMinter> {
    const issued = await issueWorkerCert(ca, templateId);
    const der = new X509Certificate(issued.certPem).raw;
    const outer = readTlv(der, 0);
    const tbsTlv = readTlv(der, outer.contentStart);
    const algorithmTlv = readTlv(der, tbsTlv.end);
    const tbs = der.subarray(tbsTlv.start, tbsTlv.end);
    // TBSCertificate: [0] version, then the serial INTEGER.
    const version = readTlv(tbs, readTlv(tbs, 0).contentStart);
    const serial = readTlv(tbs, version.end);
    const minter = new WorkerCertMinter(
      { id: templateId, tbs, algorithm: der.subarray(algorithmTlv.start, algorithmTlv.end), serial },
      createPrivateKey(caKeyPem),
      issued.keyPem,
      ca.certPem,
    );
    // Checked once: a minted certificate verifies against the CA and names the worker it is for.
    const probeId = templateId.replace(/.$/, (c) => (c === '1' ? '2' : '1'));
    const probe = new X509Certificate(minter.mint(probeId));
    const identity = identityFromAltNames(probe.subjectAltName);
    const caCert = new X509Certificate(ca.certPem);
    if (!probe.verify(caCert.publicKey) || !probe.checkIssued(caCert))
      throw new Error('a minted worker certificate does not verify against the CA');
    if (identity?.kind !== 'worker' || identity.id !== probeId)
      throw new Error(`a minted worker certificate names ${JSON.stringify(identity)}, not worker ${probeId}`);
    return minter;
  }

  /** The PEM certificate of worker `id` (its key is `keyPem`). */
  mint(id: string): string {
    const { template } = this;
    if (id.length !== template.id.length) throw new Error(`worker id ${id} is not as long as ${template.id}`);
    const tbs = Buffer.from(template.tbs);
    const from = Buffer.from(template.id);
    const to = Buffer.from(id);
    for (let at = tbs.indexOf(from); at !== -1; at = tbs.indexOf(from, at + from.length)) to.copy(tbs, at);
    const serial = randomBytes(template.serial.end - template.serial.contentStart);
    serial[0] = serial[0]! & 0x7f || 0x01;
    serial.copy(tbs, template.serial.contentStart);
    const signature = sign('sha256', tbs, this.caKey);
    const der = tlv(
      0x30,
      Buffer.concat([tbs, template.algorithm, tlv(0x03, Buffer.concat([Buffer.from([0]), signature]))]),
    );
    return `-----BEGIN CERTIFICATE-----\n${der
      .toString('base64')
      .match(/.{1,64}/g)!
      .join('\n')}\n-----END CERTIFICATE-----\n`;
  }
}
