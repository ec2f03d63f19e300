/**
 * A reverse proxy that serves a control plane under a path prefix, as nginx or an ingress does:
 * `/aetherium/...` goes to the control plane as `/...` with `X-Forwarded-Prefix: /aetherium`, the
 * Host header kept (so the WebSocket origin check sees the page's own host). HTTP and WebSocket
 * upgrades both; anything outside the prefix is a 404 of the proxy's own.
 */
import { createServer, request as httpRequest, type IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';

export interface PrefixProxy {
  /** The proxy's URL with the prefix: what a user opens. */
  url: string;
  close(): Promise<void>;
}

function strip(url: string, prefix: string): string | null {
  if (url === prefix) return '/';
  if (url.startsWith(`${prefix}/`) || url.startsWith(`${prefix}?`)) return url.slice(prefix.length) || '/';
  return null;
}

function forwardedHeaders(req: IncomingMessage, prefix: string): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) headers[k] = v;
  headers['x-forwarded-prefix'] = prefix;
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '127.0.0.1';
  return headers;
}

export async function startPrefixProxy(targetPort: number, prefix: string): Promise<PrefixProxy> {
  // Upgraded sockets leave the server's connection list: closed by hand.
  const tunnels = new Set<{ destroy(): void }>();
  const server = createServer((req, res) => {
    const path = strip(req.url ?? '/', prefix);
    if (path === null) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not under the proxy prefix');
      return;
    }
    const upstream = httpRequest(
      { host: '127.0.0.1', port: targetPort, method: req.method, path, headers: forwardedHeaders(req, prefix) },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.pipe(upstream);
  });
  server.on('upgrade', (req, socket, head) => {
    const path = strip(req.url ?? '/', prefix);
    if (path === null) return socket.destroy();
    const upstream = connect(targetPort, '127.0.0.1', () => {
      const headers = forwardedHeaders(req, prefix);
      const lines = [`${req.method} ${path} HTTP/1.1`];
      for (const [k, v] of Object.entries(headers)) for (const value of [v].flat()) lines.push(`${k}: ${value}`);
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length) upstream.write(head);
      upstream.pipe(socket);
      socket.pipe(upstream);
    });
    const end = () => {
      upstream.destroy();
      socket.destroy();
    };
    const tunnel = { destroy: end };
    tunnels.add(tunnel);
    socket.on('close', () => tunnels.delete(tunnel));
    upstream.on('error', end);
    socket.on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}${prefix}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const tunnel of tunnels) tunnel.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
