/** WebSocket helpers for the CLI: the event tail and interactive exec. */
import type WebSocket from 'ws';
import { CliError } from './api-client.ts';
import { authHeaders } from './credentials.ts';
import { trustedCa } from './http.ts';

export function wsUrl(api: string, path: string): string {
  return `${api.replace(/\/$/, '').replace(/^http/, 'ws')}/api/v1${path}`;
}

/**
 * Opens a socket; the handler is attached before the handshake so no early message is lost. `ws` is
 * loaded here, not at start: the commands that use no socket should not pay for it.
 */
export async function openSocket(url: string, onMessage: (message: Record<string, any>) => void): Promise<WebSocket> {
  const { default: WebSocket } = await import('ws');
  return new Promise((resolve, reject) => {
    const ca = url.startsWith('wss:') ? trustedCa() : undefined;
    const ws = new WebSocket(url, { headers: authHeaders(), ...(ca ? { ca } : {}) });
    // The event stream puts one or more messages in a frame, one per line.
    ws.on('message', (raw) => {
      for (const line of String(raw).split('\n')) {
        try {
          onMessage(JSON.parse(line));
        } catch {
          /* not ours */
        }
      }
    });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (d: Buffer) => (body += d));
      response.on('end', () => {
        let message = `HTTP ${response.statusCode}`;
        try {
          message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? message;
        } catch {
          /* keep the status */
        }
        reject(new CliError(message, String(response.statusCode)));
      });
    });
    ws.once('error', (err) => reject(new CliError(`cannot open ${url}: ${err.message}`, 'unreachable')));
  });
}
