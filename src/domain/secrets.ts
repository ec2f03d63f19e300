/**
 * Secrets in text that may reach a page or a log, masked: credentials in engine URLs, and the secret
 * part of a join token (its id and CA fingerprint are kept, so that a log line still says which token).
 */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]+)@/gi;
const JOIN_TOKEN_SECRET = /\b(aetherium-join\.[^.\s]*\.)[^.\s]+/g;

/**
 * `scheme://user:password@host` → `scheme://user:***@host`; `aetherium-join.<id>.<secret>.<fp>` →
 * `aetherium-join.<id>.***.<fp>`; the rest of the text is kept.
 */
export function redactSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1$2:***@').replace(JOIN_TOKEN_SECRET, '$1***');
}
