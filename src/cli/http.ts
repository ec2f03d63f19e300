/**
 * One HTTP request from the CLI, over node:http or node:https so that a private CA (`--ca-file`,
 * AETHERIUM_CA_FILE) can be trusted for a control plane with its own certificate. Failures become
 * CliErrors that say what to do: start the server, use https://, or pass the CA.
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { CliError } from './errors.ts';

let caFile: string | undefined;

export function setCaFile(file: string | undefined): void {
  caFile = file;
}

/** The CA to trust, as node:https and ws take it; undefined: the system's. */
export function trustedCa(): Buffer | undefined {
  const file = caFile ?? process.env.AETHERIUM_CA_FILE;
  if (!file) return undefined;
  try {
    return readFileSync(file);
  } catch (err) {
    throw new CliError(`cannot read the CA file ${file}: ${(err as Error).message}`, 'config', 2);
  }
}

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'CERT_HAS_EXPIRED',
]);

function explain(url: URL, err: NodeJS.ErrnoException): CliError {
  const code = err.code ?? err.message;
  if (UNTRUSTED.has(code)) {
    return new CliError(
      `the certificate of ${url.origin} is not trusted (${code}): pass --ca-file or set AETHERIUM_CA_FILE`,
      'tls',
    );
  }
  if (
    url.protocol === 'http:' &&
    (code === 'ECONNRESET' || code.startsWith('HPE_') || /socket hang up/.test(err.message))
  ) {
    return new CliError(
      `${url.origin} gave no HTTP answer (${code}); if it serves HTTPS (api_gateway.tls), use --api https://${url.host}`,
      'unreachable',
    );
  }
  return new CliError(
    `cannot reach the control plane at ${url.origin} (${code}); is \`aetherium dev\` running? Set --api or AETHERIUM_API to point elsewhere.`,
    'unreachable',
  );
}

export function send(
  target: string,
  options: { method: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; text: string }> {
  const url = new URL(target);
  const ca = url.protocol === 'https:' ? trustedCa() : undefined;
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method, headers: options.headers, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', (err) => reject(explain(url, err)));
    });
    req.on('error', (err) => reject(explain(url, err)));
    req.end(options.body);
  });
}

/** A request whose answer is read as it comes (NDJSON): each line to `onLine`; errors as `send`. */
export function streamLines(
  target: string,
  headers: Record<string, string>,
  onLine: (line: string) => void,
): Promise<void> {
  const url = new URL(target);
  const ca = url.protocol === 'https:' ? trustedCa() : undefined;
  const request = url.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', headers, ...(ca ? { ca } : {}) }, (res) => {
      let pending = '';
      const failed = (res.statusCode ?? 0) >= 400;
      res.on('data', (chunk: Buffer) => {
        pending += chunk.toString('utf8');
        if (failed) return;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) if (line) onLine(line);
      });
      res.on('end', () => {
        if (!failed) {
          if (pending) onLine(pending);
          return resolve();
        }
        let message = `HTTP ${res.statusCode}`;
        let code = String(res.statusCode);
        try {
          const error = (JSON.parse(pending) as { error?: { code?: string; message?: string } }).error;
          message = error?.message ?? message;
          code = error?.code ?? code;
        } catch {
          /* not our JSON */
        }
        reject(new CliError(message, code));
      });
      res.on('error', (err) => reject(explain(url, err)));
    });
    req.on('error', (err) => reject(explain(url, err)));
    req.end();
  });
}
