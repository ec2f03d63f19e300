/**
 * The one typed caller over the API contract (src/contract/routes.ts): `call(name, input)` fills the
 * route's path, query, headers and body from `input` (typed by the route's request schemas, z.input)
 * and answers the route's decoded answer (z.output of its response schemas: times are `Date`s).
 * Every resource of the SDK is built on it, so an API change in the contract changes the SDK's types.
 */
import type { z } from 'zod';
import { ROUTES, type RouteName } from '../contract/routes.ts';
import { type ApiError, errorFromAnswer, ProtocolError, UnavailableError } from './errors.ts';
import { type HttpAnswer, neverSent, type Transport } from './transport.ts';

type Spec<N extends RouteName> = (typeof ROUTES)[N];

/** The routes answered over plain HTTP (not the WebSocket ones). */
export type RestRouteName = { [N in RouteName]: Spec<N> extends { websocket: true } ? never : N }[RouteName];

type SchemaAt<S, K extends string> = S extends { readonly [P in K]: infer Z extends z.ZodType } ? Z : never;
type InputAt<S, K extends string> = [SchemaAt<S, K>] extends [never] ? never : z.input<SchemaAt<S, K>>;

/** One part of a call's input: required when the route needs it, optional when it may be left out. */
type Part<Name extends string, T> = [T] extends [never]
  ? { [P in Name]?: never }
  : undefined extends T
    ? { [P in Name]?: T }
    : object extends T
      ? { [P in Name]?: T }
      : { [P in Name]: T };

/** What `call(name, …)` takes: `params` (path), `query`, `body`, `headers`, each as the route's schema accepts it. */
export type RouteInput<N extends RouteName> = Part<'params', InputAt<Spec<N>, 'params'>> &
  Part<'query', InputAt<Spec<N>, 'querystring'>> &
  Part<'body', InputAt<Spec<N>, 'body'>> &
  Part<'headers', InputAt<Spec<N>, 'headers'>>;

type Responses<N extends RouteName> = Spec<N>['responses'];
/** The statuses a route answers with a result (not an error). */
export type RouteStatus<N extends RouteName> = keyof Responses<N> & number;
/** What `call(name, …)` answers: the union of the route's decoded success answers. */
export type RouteOutput<N extends RouteName> = {
  [S in RouteStatus<N>]: Responses<N>[S] extends z.ZodType ? z.output<Responses<N>[S]> : never;
}[RouteStatus<N>];

/** A decoded answer with its status and headers (`call` gives only `data`). */
export type RouteAnswer<N extends RouteName> = {
  [S in RouteStatus<N>]: {
    status: S;
    data: Responses<N>[S] extends z.ZodType ? z.output<Responses<N>[S]> : never;
    headers: HttpAnswer['headers'];
  };
}[RouteStatus<N>];

export interface CallOptions {
  signal?: AbortSignal | undefined;
  /** This request's timeout in ms, instead of the client's `requestTimeoutMs`. */
  timeoutMs?: number | undefined;
  /** Whether the request may be sent again after a failure that may have reached the server. */
  idempotent?: boolean | undefined;
}

type AnyInput = { params?: Record<string, unknown>; query?: unknown; body?: unknown; headers?: unknown };

/** The path of a route with its parameters filled in: `/vms/:id` → `/vms/abc`. */
export function pathOf(template: string, params: Record<string, unknown> | undefined): string {
  return template.replace(/:([A-Za-z_]+)/g, (_, key: string) => {
    const value = params?.[key];
    if (value === undefined || value === null || value === '')
      throw new ProtocolError(`the route ${template} needs the parameter ${key}`);
    return encodeURIComponent(String(value));
  });
}

/** A query string from the query input: lists joined with commas, times as RFC 3339, undefined left out. */
export function queryOf(query: unknown): string {
  if (query === undefined || query === null) return '';
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(query as Record<string, unknown>)) {
    if (value === undefined || value === null) continue;
    if (Array.isArray(value)) {
      if (value.length > 0) search.set(key, value.map(String).join(','));
    } else if (value instanceof Date) search.set(key, value.toISOString());
    else search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

function headersOf(headers: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries((headers as Record<string, unknown> | undefined) ?? {})) {
    if (value !== undefined && value !== null) out[key.toLowerCase()] = String(value);
  }
  return out;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
  });

export class Caller {
  constructor(
    readonly transport: Transport,
    private readonly retries: number,
  ) {}

  /** Calls a route and answers its decoded result; an error answer throws the typed error. */
  async call<N extends RestRouteName>(
    name: N,
    input: RouteInput<N>,
    options: CallOptions = {},
  ): Promise<RouteOutput<N>> {
    return (await this.request(name, input, options)).data as RouteOutput<N>;
  }

  /** As `call`, with the answer's status and headers. */
  async request<N extends RestRouteName>(
    name: N,
    input: RouteInput<N>,
    options: CallOptions = {},
  ): Promise<RouteAnswer<N>> {
    const spec = ROUTES[name] as {
      method: string;
      path: string;
      body?: z.ZodType;
      responses: Record<number, z.ZodType>;
    };
    const given = input as AnyInput;
    const path = `${pathOf(spec.path, given.params)}${queryOf(given.query)}`;
    const label = `${spec.method} /api/v1${spec.path}`;
    const idempotent = options.idempotent ?? spec.method === 'GET';
    for (let attempt = 0; ; attempt++) {
      let answer: HttpAnswer;
      try {
        answer = await this.transport.send({
          method: spec.method,
          path,
          headers: headersOf(given.headers),
          ...(spec.body && given.body !== undefined ? { body: given.body } : {}),
          signal: options.signal,
          timeoutMs: options.timeoutMs,
        });
      } catch (err) {
        if (attempt < this.retries && retryable(err, idempotent) && !options.signal?.aborted) {
          await sleep(backoff(attempt), options.signal);
          continue;
        }
        throw err;
      }
      const schema = spec.responses[answer.status];
      if (schema) {
        const parsed = schema.safeParse(answer.body);
        if (!parsed.success) {
          throw new ProtocolError(
            `${label} answered HTTP ${answer.status} with a body that does not match the API contract ` +
              `(is the server another version?): ${parsed.error.issues
                .slice(0, 3)
                .map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`)
                .join('; ')}`,
            { status: answer.status, request: label },
          );
        }
        return { status: answer.status, data: parsed.data, headers: answer.headers } as RouteAnswer<N>;
      }
      const error = errorFromAnswer(answer.status, answer.body, answer.headers, label);
      if (attempt < this.retries && retryable(error, idempotent) && !options.signal?.aborted) {
        await sleep(backoff(attempt, error), options.signal);
        continue;
      }
      if (answer.status < 400)
        throw new ProtocolError(`${label} answered HTTP ${answer.status}, which the API contract does not list`, {
          status: answer.status,
          request: label,
        });
      throw error;
    }
  }
}

/**
 * Retried: a connection that never reached the server (any method), and for a request that may be
 * sent twice (GET, a create with its Idempotency-Key), a lost connection or a 503 `unavailable`
 * (an engine restarting). Never a 429: the caller decides how to spend its rate.
 */
function retryable(err: unknown, idempotent: boolean): boolean {
  if (neverSent(err)) return true;
  if (!idempotent || !(err instanceof UnavailableError)) return false;
  return err.code === 'unavailable' || err.code === 'unreachable';
}

function backoff(attempt: number, error?: ApiError): number {
  const base = Math.min(2000, 200 * 2 ** attempt);
  const asked = error instanceof UnavailableError ? error.retryAfterMs : undefined;
  return Math.min(5000, asked ?? base) * (0.75 + Math.random() * 0.5);
}
