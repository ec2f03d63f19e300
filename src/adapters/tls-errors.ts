/**
 * Why a TLS connection to an engine (Postgres, Redis, etcd, Consul) failed, in words an operator
 * can act on. Node reports a certificate it refused with an OpenSSL code and a terse message
 * ("self-signed certificate in certificate chain"), and a certificate the server refused as an
 * alert buried in a long OpenSSL string; gRPC keeps only the text. So this reads the text (and the
 * code when there is one) and says which setting to look at; each adapter appends it to its own
 * message, which names the engine and the address.
 */

export interface TlsSettingNames {
  /** Where the CA to trust is configured, e.g. `sslrootcert` or `discovery.etcd.tls.ca_file`. */
  ca: string;
  /** Where the client certificate is configured. */
  cert: string;
}

const UNTRUSTED_CODES = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/** A sentence about the TLS failure in `err`, or null when it is not one. */
export function tlsFailureHint(err: unknown, names: TlsSettingNames): string | null {
  const code = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const text = err instanceof Error ? err.message : String(err);
  if (
    (typeof code === 'string' && UNTRUSTED_CODES.has(code)) ||
    /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate/i.test(
      text,
    )
  )
    return `the server's certificate is not signed by a CA this client trusts: check ${names.ca}`;
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /does not match certificate's altnames/i.test(text))
    return "the server's certificate does not name the host this client connects to: use a host name or IP the certificate lists";
  if (code === 'CERT_HAS_EXPIRED' || /certificate has expired/i.test(text))
    return 'a certificate has expired: renew it';
  if (/certificate required|alert bad certificate|alert unknown ca|valid client certificate/i.test(text))
    return `the server refused this client's certificate, or wants one: check ${names.cert} (signed by a CA the server trusts)`;
  return null;
}

/** `message`, with the hint appended when `err` is a TLS failure. */
export function withTlsHint(message: string, err: unknown, names: TlsSettingNames): string {
  const hint = tlsFailureHint(err, names);
  return hint ? `${message} (TLS: ${hint})` : message;
}
