/** Secrets in text that may reach a page or a log (engine URLs with a password in them), masked. */
const URL_CREDENTIALS = /\b([a-z][a-z0-9+.-]*:\/\/)([^/\s:@]*):([^/\s@]+)@/gi;

/** `scheme://user:password@host` → `scheme://user:***@host`; the rest of the text is kept. */
export function redactSecrets(text: string): string {
  return text.replace(URL_CREDENTIALS, '$1$2:***@');
}
