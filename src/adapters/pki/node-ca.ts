/**
 * The NodeCertificateAuthority port backed by a CA whose key this process holds (loaded from the
 * control plane's cert and key files): it signs a joining or renewing worker's CSR in process.
 */
import type { IssuedCertificate, NodeCertificateAuthority } from '../../ports/node-ca.ts';
import { type CertificateAuthority, loadCa } from './ca.ts';
import { signCsr } from './csr.ts';

export class LocalNodeCertificateAuthority implements NodeCertificateAuthority {
  readonly caPem: string;
  readonly fingerprint: string;

  constructor(private readonly ca: CertificateAuthority) {
    this.caPem = ca.certPem;
    this.fingerprint = ca.fingerprint;
  }

  static async fromFiles(certFile: string, keyFile: string): Promise<LocalNodeCertificateAuthority> {
    return new LocalNodeCertificateAuthority(await loadCa(certFile, keyFile));
  }

  signWorker(csrPem: string, workerId: string, ttlMs: number): Promise<IssuedCertificate> {
    return signCsr(this.ca, csrPem, workerId, ttlMs);
  }
}
