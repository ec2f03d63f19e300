/**
 * NodeCertificateAuthority: the control plane's signer of worker certificates, used when a worker
 * joins with a token and when it renews. The identity written into the certificate is the one the
 * control plane decided (the join token's grant, or the certificate being renewed), never what the
 * signing request asks for: a CSR contributes only its public key.
 */
export interface IssuedCertificate {
  certPem: string;
  /** Hex serial number, unique per certificate. */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

export interface NodeCertificateAuthority {
  /** The CA certificate, PEM: what a joining worker learns to trust. */
  readonly caPem: string;
  /** `sha256:<hex>` of the CA certificate's DER bytes: the pin a join token carries. */
  readonly fingerprint: string;
  /**
   * Signs the CSR's public key into a client certificate for `workerId`, valid for `ttlMs`.
   * Throws `bad_request` when the CSR does not parse or its self-signature does not verify.
   */
  signWorker(csrPem: string, workerId: string, ttlMs: number): Promise<IssuedCertificate>;
}
