/**
 * The OpenAPI document's last touches. @fastify/websocket hides WebSocket routes from the document;
 * they are part of the API all the same, so their handshake is added back from the contract table:
 * the query or path parameters it takes, `101 Switching Protocols`, and the refusals (the messages
 * after the upgrade are documented in the README).
 */
import { z } from 'zod';
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
