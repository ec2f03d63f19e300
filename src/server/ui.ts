/**
 * The web UI (web/, built into web/dist) served at `/`. Two public routes, since the files hold no
 * cluster data (the page signs in and calls the API with its own token):
 *   GET /     and   GET /*   — a file of the build, else the app's index.html, so a deep link
 *                               (`/workers/w1`) opens the page it names.
 * Unknown API paths stay JSON 404s. The index carries `<base href>` for the path the UI is served
 * under: `ui.base_path`, else a trusted proxy's `X-Forwarded-Prefix`, else `/`, so the same build
 * works at the root or behind a proxy that strips a prefix; its assets are relative to it.
 * The UI's answers carry a strict Content-Security-Policy: only our own scripts, no inline ones,
 * connections only to this origin.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAX_ID_LENGTH } from '../contract/requests.ts';
import { AetheriumError } from '../domain/index.ts';
import { PARAM_TOO_LONG } from './http-errors.ts';

export interface UiOptions {
  /** The built UI (index.html and assets/); null or missing: `/` explains how to build it. */
  dir: string | null;
  /** The path a proxy serves this control plane under (`/aetherium`), when it strips it. */
  basePath: string | null;
  /** Take the base path from `X-Forwarded-Prefix` (only behind a trusted proxy). */
  trustForwardedPrefix: boolean;
}

export const UI_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  // React and xterm.js set styles at run time; no script runs from a style.
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'self'",
  "frame-ancestors 'none'",
  "form-action 'self'",
].join('; ');

/** A path prefix we will write into the page: segments of safe characters, no trailing slash. */
const PREFIX = /^(\/[A-Za-z0-9._~-]+)*$/;

export function isBasePath(value: string): boolean {
  return PREFIX.test(value);
}

export async function installUi(app: FastifyInstance, options: UiOptions): Promise<void> {
  const dir = options.dir && (await exists(join(options.dir, 'index.html'))) ? options.dir : null;
  if (dir) await app.register(fastifyStatic, { root: dir, serve: false });
  let index: { mtimeMs: number; html: string } | null = null;

  const page = async (request: FastifyRequest, reply: FastifyReply) => {
    if (!dir) {
      return reply
        .status(503)
        .type('text/html; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('content-security-policy', UI_CSP)
        .send(NOT_BUILT);
    }
    const file = join(dir, 'index.html');
    const { mtimeMs } = await stat(file);
    // A rebuild swaps web/dist: read the index again when it changed, not on every request.
    if (!index || index.mtimeMs !== mtimeMs) index = { mtimeMs, html: await readFile(file, 'utf8') };
    const base = `${basePathOf(request, options)}/`;
    return reply
      .type('text/html; charset=utf-8')
      .header('cache-control', 'no-store')
      .header('vary', 'x-forwarded-prefix')
      .header('content-security-policy', UI_CSP)
      .send(index.html.replace('<head>', `<head>\n    <base href="${base}" />`));
  };

  // Before the handler (and so before @fastify/websocket would upgrade the socket just to close
  // it): what the wildcard must not answer with a page. An API path no route took is the API's
  // error, as it was without the UI: a path parameter over the router's limit (which makes the
  // router fall through to this wildcard instead of refusing it) is 400, anything else 404; and a
  // WebSocket upgrade anywhere here is refused over HTTP.
  const refuse = async (request: FastifyRequest) => {
    const path = (request.params as { '*'?: string })['*'] ?? '';
    if (path === 'api' || path.startsWith('api/')) {
      const segments = path.split('?')[0]!.split('/');
      if (segments.some((segment) => segment.length > MAX_ID_LENGTH))
        throw new AetheriumError('validation_failed', PARAM_TOO_LONG);
      throw new AetheriumError('not_found', `no route GET /${path.split('?')[0]}; see /api/docs`);
    }
    if (request.headers.upgrade)
      throw new AetheriumError('not_found', `no WebSocket route at ${request.url.split('?')[0]}; see /api/docs`);
  };

  app.get('/', { schema: { hide: true }, onRequest: refuse }, page);
  app.get('/*', { schema: { hide: true }, onRequest: refuse }, async (request, reply) => {
    const path = (request.params as { '*': string })['*'];
    // A name with an extension is a file of the build (or nothing); any other path is a page.
    if (!/\.[A-Za-z0-9]+$/.test(path)) return page(request, reply);
    if (!dir) throw new AetheriumError('not_found', `no file /${path}: the web UI is not built`);
    void reply.header('content-security-policy', UI_CSP);
    // Vite names the assets by their content: they never change, so browsers keep them.
    if (path.startsWith('assets/')) return reply.sendFile(path, { maxAge: '365d', immutable: true });
    return reply.sendFile(path, { maxAge: 0 });
  });
}

function basePathOf(request: FastifyRequest, options: UiOptions): string {
  if (options.basePath !== null) return options.basePath;
  if (!options.trustForwardedPrefix) return '';
  const forwarded = request.headers['x-forwarded-prefix'];
  const value = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.trim().replace(/\/+$/, '') ?? '';
  return isBasePath(value) ? value : '';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

const NOT_BUILT = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Aetherium: the web UI is not built</title></head>
<body>
<h1>The web UI is not built</h1>
<p>This control plane is running, but it has no built UI to serve. Build it with <code>npm run build</code>
(a fresh <code>npm ci</code> does), then reload. The API works without it: see <a href="api/docs">the API documentation</a>.</p>
</body></html>
`;
