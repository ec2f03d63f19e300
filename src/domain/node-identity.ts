/**
 * Who is at the other end of the agent channel, read from the certificate it presented and never
 * from what it says. Identities are SPIFFE-style URIs in the certificate's subject alternative
 * names: a worker certificate names exactly one worker, a server certificate names the role.
 * Workers check the server's certificate for the DNS name `server.aetherium` whatever address
 * they dialled (Nomad's `verify_server_hostname`), so a worker certificate can never pose as a
 * control plane.
 */

/** The DNS name every server certificate carries and every worker verifies. */
export const SERVER_NAME = 'server.aetherium';

export const WORKER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/;

const TRUST_DOMAIN = 'spiffe://aetherium';

export type NodeIdentity = { kind: 'worker'; id: string } | { kind: 'server' };

export function identityUri(identity: NodeIdentity): string {
  return identity.kind === 'worker' ? `${TRUST_DOMAIN}/worker/${identity.id}` : `${TRUST_DOMAIN}/server`;
}

/**
 * The identity in a certificate's subject alternative names, in the form Node's
 * `getPeerCertificate().subjectaltname` gives them (`DNS:a, URI:spiffe://…, IP Address:…`).
 * Null unless there is exactly one Aetherium identity: a certificate naming two is refused.
 */
export function identityFromAltNames(altNames: string | undefined | null): NodeIdentity | null {
  if (!altNames) return null;
  const found: NodeIdentity[] = [];
  for (const entry of altNames.split(/,\s*/)) {
    if (!entry.startsWith('URI:')) continue;
    const uri = entry.slice(4);
    if (uri === `${TRUST_DOMAIN}/server`) found.push({ kind: 'server' });
    else if (uri.startsWith(`${TRUST_DOMAIN}/worker/`)) {
      const id = uri.slice(`${TRUST_DOMAIN}/worker/`.length);
      if (WORKER_ID_PATTERN.test(id)) found.push({ kind: 'worker', id });
    }
  }
  return found.length === 1 ? (found[0] as NodeIdentity) : null;
}

/**
 * Certificates we issue start this long before they are signed, for hosts whose clocks run a
 * little behind. So the moment of issue is `notBefore + CERT_BACKDATE_MS`, which is what a
 * revocation cut-off ("refuse everything issued before T") is compared with.
 */
export const CERT_BACKDATE_MS = 60_000;

export function issuedAt(notBefore: Date): Date {
  return new Date(notBefore.getTime() + CERT_BACKDATE_MS);
}
