/**
 * The OpenAPI document's last touches, from the contract table and the error catalogue:
 * - @fastify/websocket hides WebSocket routes from the document; they are part of the API all the
 *   same, so their handshake is added back: the query or path parameters it takes, `101 Switching
 *   Protocols`, and the refusals (the messages after the upgrade are documented in the README);
 * - each answer is described (the status, and for an error the codes it may carry) instead of
 *   the generator's "Default Response", and the headers a route answers with are declared.
 */
import { STATUS_CODES } from 'node:http';
import * as z from 'zod';
import { ERROR_CATALOGUE } from '../domain/index.ts';
import { COMMON_ERROR_STATUSES } from '../contract/errors.ts';
import { ROUTES, type RouteSpec } from '../contract/routes.ts';

function parameters(schema: z.ZodType | undefined, where: 'query' | 'path') {
  if (!schema) return [];
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as {
    properties?: Record<string, unknown>;
    required?: string[];
  };
  return Object.entries(json.properties ?? {}).map(([name, property]) => ({
    name,
    in: where,
    required: where === 'path' || (json.required ?? []).includes(name),
    schema: property,
  }));
}

export function withWebSocketRoutes<D extends { paths?: object }>(document: D): D {
  const paths: Record<string, object | undefined> = { ...(document.paths ?? {}) };
  for (const [name, spec] of Object.entries(ROUTES as Record<string, RouteSpec>)) {
    if (!spec.websocket) continue;
    const path = `/api/v1${spec.path.replace(/:([a-z_]+)/g, '{$1}')}`;
    const error = { content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
    paths[path] = {
      ...paths[path],
      get: {
        operationId: name,
        tags: [...spec.tags],
        summary: spec.summary,
        description: 'A WebSocket: connect with `Upgrade: websocket`; the messages are described in the README.',
        parameters: [...parameters(spec.params, 'path'), ...parameters(spec.querystring, 'query')],
        responses: {
          101: { description: 'Switching Protocols: the WebSocket is open' },
          ...Object.fromEntries(
            [...COMMON_ERROR_STATUSES, ...(spec.errors ?? [])].map((s) => [s, { description: 'Refused', ...error }]),
          ),
        },
      },
    };
  }
  return { ...document, paths };
}

/** "Not Found: `not_found` (no such VM, task or worker)", from the catalogue, for each error status. */
function statusDescription(status: number): string {
  const text = STATUS_CODES[status] ?? `HTTP ${status}`;
  if (status < 400) return text;
  const codes = Object.entries(ERROR_CATALOGUE)
    .filter(([, entry]) => entry.status === status)
    .map(([code, entry]) => `\`${code}\` (${entry.description})`);
  return codes.length ? `${text}: ${codes.join('; ')}` : text;
}

type Operation = { responses?: Record<string, { description?: string; headers?: object }> };

export function describeResponses<D extends { paths?: object }>(document: D): D {
  const byOperation = new Map(
    Object.entries(ROUTES as Record<string, RouteSpec>).map(([name, spec]) => [name, spec] as const),
  );
  for (const operations of Object.values(document.paths ?? {}) as Record<
    string,
    Operation & { operationId?: string }
  >[]) {
    for (const operation of Object.values(operations)) {
      const spec = operation.operationId ? byOperation.get(operation.operationId) : undefined;
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        if (!response.description || response.description === 'Default Response') {
          response.description = statusDescription(Number(status));
        }
        if (spec?.replyHeaders && status.startsWith('2')) {
          response.headers = Object.fromEntries(
            Object.entries(spec.replyHeaders).map(([name, description]) => [
              name,
              { description, schema: { type: 'string' } },
            ]),
          );
        }
      }
    }
  }
  return document;
}

/**
 * The generator writes an input twin (`VmInput`, …) of every shared shape, though only answers use
 * them: keep the components something references, so the document lists each shape once.
 */
export function pruneUnusedComponents<D extends object>(document: D): D {
  const { components, ...rest } = document as { components?: object };
  const schemas = (components as { schemas?: Record<string, unknown> } | undefined)?.schemas;
  if (!schemas) return document;
  const used = new Set<string>();
  const queue = [JSON.stringify(rest)];
  while (queue.length) {
    for (const [, name] of queue.pop()!.matchAll(/"#\/components\/schemas\/([^"]+)"/g)) {
      if (name && !used.has(name)) {
        used.add(name);
        queue.push(JSON.stringify(schemas[name] ?? null));
      }
    }
  }
  const kept = Object.fromEntries(Object.entries(schemas).filter(([name]) => used.has(name)));
  return { ...document, components: { ...components, schemas: kept } };
}
