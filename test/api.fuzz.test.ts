/**
 * A property-based fuzz of the whole API, driven by its OpenAPI document: every operation gets
 * requests built from its own schema (params, querystring, body) mixed with hostile values (NUL,
 * lone surrogates, bad %-escapes, 200 KB strings, huge and fractional numbers, wrong JSON types,
 * invalid JSON, deep nesting, unknown keys), mostly with the admin key so they reach validation, a
 * few with no key or a bad one. Both WebSockets get fuzzed frames. Whatever comes in, the answer is
 * never a 5xx, is JSON, an error is exactly `{ error: { code, message, details? } }` with a code of
 * the catalogue, and no engine's text leaks out. Seeded and bounded: the same inputs on every run.
 */
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ERROR_CATALOGUE } from '../src/domain/errors.ts';
import { accessOf } from '../src/server/auth/route-access.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';

const SEED = 20261201;
/** Runs per HTTP operation; the exec and create operations cost more (a command, a VM) and get fewer. */
const RUNS = { operation: 30, exec: 25, createVm: 25, extra: 15, handshake: 15, eventsWs: 25, execWs: 25 } as const;
/** After the first failure of an operation, its counterexample is shrunk for at most this long. */
const SHRINK_BUDGET_MS = 3000;
const REQUEST_TIMEOUT_MS = 10_000;
const WS_CONNECTION_TIMEOUT_MS = 6000;

const VM_NAME = 'fuzz-vm';
const WORKER_ID = 'test-worker';
const ADMIN_KEY_NAME = 'dev-admin';

const LEAK_MARKERS = ['violates', 'syntax error', 'invalid byte sequence', 'PGlite', 'pg_', 'duplicate key'];
const SERVER_CLOSE_CODES = new Set([1000, 1001, 4400, 4404, 4409]);

// ---------------------------------------------------------------------------------------------
// The OpenAPI document, as far as the fuzz reads it

interface JsonSchema {
  type?: string | string[];
  enum?: unknown[];
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  anyOf?: JsonSchema[];
  nullable?: boolean;
}

interface Parameter {
  in: string;
  name: string;
  required?: boolean;
  schema?: JsonSchema;
}

interface OperationDoc {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
}

type Method = 'GET' | 'POST' | 'DELETE';
/** `api`: JSON answers; `redirect`: `GET /`; `static`: the docs' files; `unknown`: no such route. */
type Kind = 'api' | 'ui' | 'static' | 'unknown';

interface Op {
  key: string;
  method: Method;
  /** The OpenAPI path, `{id}` style. */
  path: string;
  kind: Kind;
  public: boolean;
  pathParams: string[];
  query: Parameter[];
  body: JsonSchema | null;
}

function operationsOf(doc: { paths: Record<string, Record<string, OperationDoc>> }): Op[] {
  const ops: Op[] = [];
  for (const [path, methods] of Object.entries(doc.paths)) {
    for (const [lower, operation] of Object.entries(methods)) {
      const method = lower.toUpperCase() as Method;
      const parameters = operation.parameters ?? [];
      const access = accessOf(method, path.replace(/\{(\w+)\}/g, ':$1'));
      ops.push({
        key: `${method} ${path}`,
        method,
        path,
        kind: 'api',
        public: access === 'public',
        pathParams: parameters.filter((p) => p.in === 'path').map((p) => p.name),
        query: parameters.filter((p) => p.in === 'query'),
        body: operation.requestBody?.content?.['application/json']?.schema ?? null,
      });
    }
  }
  // Not in the document, but routes all the same: the web UI's pages, the docs and their files, and a miss.
  const extra = (method: Method, path: string, kind: Kind, pathParams: string[] = []): Op => ({
    key: `${method} ${path}`,
    method,
    path,
    kind,
    public: true,
    pathParams,
    query: [],
    body: null,
  });
  ops.push(
    extra('GET', '/', 'ui'),
    extra('GET', '/{page}', 'ui', ['page']),
    extra('GET', '/api/docs/json', 'api'),
    extra('GET', '/api/docs/static/{file}', 'static', ['file']),
    extra('GET', '/api/v1/{route}', 'unknown', ['route']),
  );
  return ops;
}

// ---------------------------------------------------------------------------------------------
// Hostile values

const HOSTILE_TEXT = [
  '\u0000',
  'a\u0000b',
  '\ud800',
  'x\udfffy',
  '\udc00\ud800',
  '%00',
  '%ff',
  '%zz',
  '%',
  '../',
  '../../../../etc/passwd',
  '..\\..\\windows',
  '💥🚀',
  'é',
  'Ω≈ç√∫',
  '\u202eevil',
  '\ufeffbom',
  '\u200b',
  ' ',
  '\t\n\r',
  '',
  'null',
  'undefined',
  'true',
  '0',
  '-1',
  '1e309',
  'NaN',
  'Infinity',
  '<script>alert(1)</script>',
  "' OR '1'='1",
  "'; DROP TABLE vms; --",
  '$(id)',
  '`id`',
  `\${jndi:ldap://x}`,
  '\\',
  '"',
  '{}',
  '[]',
  '%s%n',
  '\u007f',
  '\u001b[31m',
  'a'.repeat(101),
];

/** Already %-encoded fragments of a URL: some decode to NUL, some are not valid escapes or UTF-8 at all. */
const RAW_URL_FRAGMENTS = [
  '%00',
  'a%00b',
  '%ff',
  '%zz',
  '%',
  'a%',
  '%E2%82',
  '%C0%AF',
  '%ED%A0%80',
  '..%2F..%2Fetc',
  '%2e%2e',
  '..',
  '.',
  '%20',
  '+',
  ';',
  'a;b=c',
  '%23',
  '%3F',
  '%2F',
];

const RAW_QUERY_FRAGMENTS = ['&&', '=', '==', '&=x', 'x', '%zz=1', 'a=%', '%ff', '%00=%00', 'a[b]=1', 'a[]=1&a[]=2'];

const INVALID_JSON = [
  '{',
  '}',
  '{"a":',
  '{"a":1,}',
  "{'a':1}",
  'nul',
  'tru',
  '[1,]',
  '{"a":1}{"b":2}',
  '\u0000',
  '{"a":"\\ud800"}',
  '{"a":"\\u0000"}',
  '"\\ud800"',
  '{"__proto__":{"polluted":1}}',
  '{"constructor":{"prototype":{"polluted":1}}}',
  `1${'0'.repeat(400)}`,
  '{"a":1e999}',
  '\ufeff{}',
  '{"a":1',
  '%7B%7D',
  '<xml/>',
  'undefined',
  'NaN',
  '{"a":NaN}',
  '{"a":Infinity}',
  '{"a":01}',
  '{"a":"\\x41"}',
  '{"a":"\t"}',
  '{"a":"\\uZZZZ"}',
];

const CONTENT_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'application/octet-stream',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'APPLICATION/JSON',
  'application/json;;',
  'application/jsonx',
];

const hostileText = fc.constantFrom(...HOSTILE_TEXT);

/** Dates JavaScript takes and SQL may not: the ends of its range, year 0, the epoch's edges. */
const edgeDate = fc.oneof(
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom(
    '-271821-04-20T00:00:00.000Z',
    '+275760-09-13T00:00:00.000Z',
    '-100000-01-01',
    '0000-01-01',
    '1969-12-31T23:59:59.999Z',
    '9999-12-31',
    '2026-02-30',
    '1e20',
  ),
);

/** 256 characters to 200 KB of one unit: plain, two-byte, four-byte, NUL, `%`, a lone surrogate, a path. */
const longText = fc
  .tuple(fc.constantFrom('a', 'é', '💥', '\u0000', '%', '\ud800', 'ab/'), fc.integer({ min: 256, max: 200_000 }))
  .map(([unit, length]) => unit.repeat(Math.max(1, Math.floor(length / unit.length))));

function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = i % 2 === 0 ? [value] : { a: value };
  return value;
}

/** Deeper than any JSON.stringify in this process could write: built as text. */
const deepText = fc
  .tuple(fc.integer({ min: 1000, max: 100_000 }), fc.boolean())
  .map(([n, arrays]) => (arrays ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`));

const structural = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer({ min: 10, max: 2000 }).map(nested),
  fc.constant(Array.from({ length: 5000 }, () => 'a')),
);

const wrongType = fc.constantFrom<unknown>(null, true, false, 0, -1, '', [], {}, [null], { '': '' });

function hostileNumber(s: JsonSchema): fc.Arbitrary<unknown> {
  const min = s.minimum ?? 0;
  const max = s.maximum ?? 0;
  return fc.oneof(
    fc.constantFrom<unknown>(
      -1,
      0,
      -0,
      0.5,
      1.5,
      1e-7,
      1e308,
      -1e308,
      2 ** 31,
      2 ** 32,
      2 ** 53,
      2 ** 53 + 2,
      2 ** 63,
      -(2 ** 63),
      Number.MAX_VALUE,
      Number.MIN_VALUE,
      min - 1,
      max + 1,
      max + 0.5,
      min + 0.25,
    ),
    fc.double(),
    fc.constantFrom('1', '1e3', 'NaN', '0x10', ''),
  );
}

const unknownKey = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'type',
    'id',
    '',
    ' ',
    '\u0000',
    '\ud800',
    'a.b',
  ),
  fc.string({ maxLength: 8 }),
);

/** Valid as an environment name and as a label key. */
const plainKey = fc.stringMatching(/^[A-Za-z][A-Za-z0-9_]{0,12}$/);
const recordKey = fc.oneof(
  { weight: 4, arbitrary: plainKey },
  { weight: 1, arbitrary: hostileText },
  { weight: 1, arbitrary: fc.string({ maxLength: 70 }) },
);

// ---------------------------------------------------------------------------------------------
// Values from a schema: mostly what it asks for, sometimes not

type Overrides = ReadonlyMap<string, fc.Arbitrary<unknown>>;

/** How values are made: `hostile` mixes hostile values in at every level, else all is as the schema says. */
interface Gen {
  overrides: Overrides;
  hostile: boolean;
}

function stringArb(s: JsonSchema): fc.Arbitrary<string> {
  if (s.pattern) return fc.stringMatching(new RegExp(s.pattern));
  const minLength = s.minLength ?? 0;
  const maxLength = Math.max(minLength, Math.min(s.maxLength ?? 24, 24));
  return fc.oneof(fc.string({ minLength, maxLength }), fc.string({ minLength, maxLength, unit: 'grapheme' }));
}

function typeOf(s: JsonSchema): string | undefined {
  return Array.isArray(s.type) ? s.type[0] : s.type;
}

function hostileArb(s: JsonSchema): fc.Arbitrary<unknown> {
  switch (typeOf(s)) {
    case 'integer':
    case 'number':
      return fc.oneof(hostileNumber(s), wrongType);
    case 'boolean':
      return fc.oneof(fc.constantFrom<unknown>('true', 'false', 1, 0, 'yes'), wrongType);
    case 'object':
    case 'array':
      return fc.oneof(wrongType, structural, hostileText);
    default:
      return fc.oneof({ weight: 3, arbitrary: hostileText }, { weight: 1, arbitrary: longText }, wrongType, structural);
  }
}

function valueArb(s: JsonSchema, at: string, g: Gen): fc.Arbitrary<unknown> {
  if (!g.hostile) return validArb(s, at, g);
  return fc.oneof({ weight: 5, arbitrary: validArb(s, at, g) }, { weight: 1, arbitrary: hostileArb(s) });
}

function validArb(s: JsonSchema, at: string, g: Gen): fc.Arbitrary<unknown> {
  const override = g.overrides.get(at);
  if (override) return override;
  if (s.anyOf) return fc.oneof(...s.anyOf.map((alt, i) => validArb(alt, `${at}|${i}`, g)));
  let arb: fc.Arbitrary<unknown>;
  if (s.enum) arb = fc.constantFrom(...s.enum);
  else {
    switch (typeOf(s)) {
      case 'string':
        arb = stringArb(s);
        break;
      case 'integer':
        arb = fc.integer({
          min: Math.max(s.minimum ?? -1000, Number.MIN_SAFE_INTEGER),
          max: Math.min(s.maximum ?? 1_000_000, Number.MAX_SAFE_INTEGER),
        });
        break;
      case 'number':
        arb = fc.double({ min: s.minimum ?? -1000, max: s.maximum ?? 1e6, noNaN: true, noDefaultInfinity: true });
        break;
      case 'boolean':
        arb = fc.boolean();
        break;
      case 'array': {
        const minLength = s.minItems ?? 0;
        arb = fc.array(valueArb(s.items ?? {}, `${at}[]`, g), {
          minLength,
          maxLength: Math.max(minLength, Math.min(s.maxItems ?? 4, 4)),
        });
        break;
      }
      case 'object':
        arb = objectArb(s, at, g);
        break;
      default:
        arb = fc.oneof(edgeDate, fc.string(), fc.integer());
    }
  }
  return s.nullable ? fc.option(arb, { nil: null, freq: 5 }) : arb;
}

function objectArb(s: JsonSchema, at: string, g: Gen): fc.Arbitrary<unknown> {
  const shape: Record<string, fc.Arbitrary<unknown>> = {};
  for (const [name, prop] of Object.entries(s.properties ?? {})) shape[name] = valueArb(prop, `${at}.${name}`, g);
  const known = fc.record(shape, { requiredKeys: s.required ?? [] });
  const free =
    typeof s.additionalProperties === 'object'
      ? fc.dictionary(g.hostile ? recordKey : plainKey, valueArb(s.additionalProperties, `${at}.*`, g), { maxKeys: 4 })
      : fc.constant({});
  const unknown = !g.hostile
    ? fc.constant({})
    : fc.option(fc.dictionary(unknownKey, fc.oneof(hostileText, wrongType), { minKeys: 1, maxKeys: 2 }), {
        nil: {},
        freq: 6,
      });
  return fc.tuple(known, free, unknown).map(([a, b, c]) => ({ ...b, ...a, ...c }));
}

// ---------------------------------------------------------------------------------------------
// URLs

/** %-encodes a string; a lone surrogate, which has no UTF-8, goes as its CESU-8 bytes, which no decoder takes. */
function encodeText(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        out += encodeURIComponent(text.slice(i, i + 2));
        i++;
        continue;
      }
    }
    if (c >= 0xd800 && c <= 0xdfff) {
      out += [0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f)]
        .map((b) => `%${b.toString(16).toUpperCase()}`)
        .join('');
      continue;
    }
    out += encodeURIComponent(text[i]!);
  }
  return out;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return text;
  }
}

/** An id as the fuzz makes them: real ones, UUIDs, random text, 0/100/101/500 characters, hostile text. */
function idText(real: readonly string[]): fc.Arbitrary<string> {
  const options: fc.WeightedArbitrary<string>[] = [
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: fc.stringMatching(/^[a-z0-9-]{1,30}$/) },
    { weight: 2, arbitrary: fc.string({ minLength: 1, maxLength: 40, unit: 'grapheme' }) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(0, 100, 101, 500), fc.constantFrom('a', 'é', '-', '0'))
        .map(([n, unit]) => unit.repeat(n)),
    },
    { weight: 2, arbitrary: hostileText },
    { weight: 1, arbitrary: longText },
  ];
  if (real.length > 0) options.push({ weight: 4, arbitrary: fc.constantFrom(...real) });
  return fc.oneof(...options);
}

function segmentArb(real: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: idText(real).map(encodeText) },
    { weight: 1, arbitrary: fc.constantFrom(...RAW_URL_FRAGMENTS) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(idText(real), fc.constantFrom(...RAW_URL_FRAGMENTS))
        .map(([id, fragment]) => `${encodeText(id)}${fragment}`),
    },
  );
}

const hostileQueryValue = fc.oneof(
  hostileText.map(encodeText),
  fc.constantFrom(...RAW_URL_FRAGMENTS),
  fc.constantFrom('-1', '1.5', '1e400', '1e21', '-0', '9007199254740993', '99999999999999999999', 'abc', ''),
  longText.map(encodeText),
);

function queryValueArb(s: JsonSchema): fc.Arbitrary<string> {
  if (s.enum) return fc.constantFrom(...s.enum.map(String));
  switch (typeOf(s)) {
    case 'integer':
      return fc
        .integer({ min: s.minimum ?? -10, max: Math.min(s.maximum ?? 1000, Number.MAX_SAFE_INTEGER) })
        .map(String);
    case 'number':
      return fc.double({ min: s.minimum ?? -10, max: s.maximum ?? 1000, noNaN: true }).map(String);
    case 'string':
      return stringArb(s).map(encodeText);
    default:
      return fc.oneof(edgeDate.map(encodeText), fc.integer().map(String), stringArb({}).map(encodeText));
  }
}

/** A querystring: declared keys (valid or hostile), unknown and repeated keys, raw fragments. */
function queryArb(op: Op, hostile: boolean): fc.Arbitrary<string> {
  const declared = op.query.map((p) =>
    fc
      .option(
        hostile
          ? fc.oneof(
              { weight: 3, arbitrary: queryValueArb(p.schema ?? {}) },
              { weight: 1, arbitrary: hostileQueryValue },
            )
          : queryValueArb(p.schema ?? {}),
        { nil: null, freq: 2 },
      )
      .map((value): [string, string] | null => (value === null ? null : [p.name, value])),
  );
  const names = op.query.map((p) => p.name);
  const extraKeys = fc.oneof(
    fc.constantFrom('foo', '__proto__', 'constructor', 'limit[]', 'a[b]', '', 'status.x'),
    hostileText.map(encodeText),
    ...(names.length > 0 ? [fc.constantFrom(...names)] : []),
  );
  const extras = fc.array(fc.tuple(extraKeys, hostileQueryValue), { maxLength: hostile ? 2 : 0 });
  const raw = hostile ? fc.option(fc.constantFrom(...RAW_QUERY_FRAGMENTS), { nil: null, freq: 8 }) : fc.constant(null);
  // `wait=true` with a long timeout would hold the fuzz for minutes: a wait is never longer than 1 s.
  const waitTimeout = hostile
    ? fc.constantFrom('0', '0.2', '1', '-1', '3601', 'abc', '1e400')
    : fc.constantFrom('0', '0.2', '1');
  return fc.tuple(fc.tuple(...declared), extras, raw, waitTimeout).map(([pairs, extra, fragment, timeout]) => {
    let all = [...pairs.filter((p): p is [string, string] => p !== null), ...extra];
    const waits = all.some(([k, v]) => safeDecode(k) === 'wait' && ['true', '1'].includes(safeDecode(v)));
    if (waits) all = [...all.filter(([k]) => safeDecode(k) !== 'timeout'), ['timeout', timeout]];
    const parts = all.map(([k, v]) => `${k}=${v}`);
    if (fragment !== null) parts.push(fragment);
    return parts.length > 0 ? `?${parts.join('&')}` : '';
  });
}

// ---------------------------------------------------------------------------------------------
// Requests

type Body = { kind: 'none' } | { kind: 'text'; text: string; contentType: string | null };
type Auth = { kind: 'admin' } | { kind: 'none' } | { kind: 'bad'; header: string };

interface HttpRequest {
  op: Op;
  /** Whether hostile values were mixed in; else every value is as the schema says. */
  hostile: boolean;
  auth: Auth;
  url: string;
  body: Body;
}

function bodyArb(op: Op, overrides: Overrides, hostile: boolean): fc.Arbitrary<Body> {
  const json = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Body> =>
    arb.map((v) => ({ kind: 'text', text: JSON.stringify(v) ?? 'null', contentType: 'application/json' }));
  const first = Object.keys(op.body?.properties ?? {})[0] ?? 'a';
  const rawJson = fc
    .oneof(
      fc.constantFrom(...INVALID_JSON),
      deepText,
      deepText.map((deep) => `{"${first}":${deep}}`),
      longText.map((s) => JSON.stringify({ [first]: s })),
    )
    .map((text): Body => ({ kind: 'text', text, contentType: 'application/json' }));
  const wrongContentType = fc
    .tuple(fc.constantFrom(...CONTENT_TYPES), fc.oneof(fc.string(), fc.constant('{}')))
    .map(([contentType, text]): Body => ({ kind: 'text', text, contentType }));
  const empty = fc.constant<Body>({ kind: 'text', text: '', contentType: 'application/json' });
  const none = fc.constant<Body>({ kind: 'none' });
  const anyJson = json(fc.jsonValue({ maxDepth: 2 }));
  if (!hostile) return op.body ? json(valueArb(op.body, 'body', { overrides, hostile })) : none;
  if (op.body) {
    return fc.oneof(
      { weight: 10, arbitrary: json(valueArb(op.body, 'body', { overrides, hostile })) },
      { weight: 1, arbitrary: anyJson },
      { weight: 2, arbitrary: rawJson },
      { weight: 1, arbitrary: none },
      { weight: 1, arbitrary: empty },
      { weight: 1, arbitrary: wrongContentType },
    );
  }
  if (op.method === 'POST') {
    return fc.oneof(
      { weight: 6, arbitrary: none },
      { weight: 1, arbitrary: anyJson },
      { weight: 1, arbitrary: rawJson },
    );
  }
  return fc.oneof(
    { weight: 12, arbitrary: none },
    { weight: 1, arbitrary: anyJson },
    { weight: 1, arbitrary: rawJson },
  );
}

function authArb(adminKey: string): fc.Arbitrary<Auth> {
  const bad = fc
    .constantFrom(
      'Bearer',
      'Bearer ',
      'Basic YWRtaW46YWRtaW4=',
      'Bearer not-a-key',
      `Bearer ${'x'.repeat(5000)}`,
      'bearer a b',
      `Bearer ${adminKey}x`,
      `Bearer ${adminKey.slice(0, -1)}`,
      'Token abc',
    )
    .map((header): Auth => ({ kind: 'bad', header }));
  return fc.oneof(
    { weight: 17, arbitrary: fc.constant<Auth>({ kind: 'admin' }) },
    { weight: 2, arbitrary: fc.constant<Auth>({ kind: 'none' }) },
    { weight: 1, arbitrary: bad },
  );
}

// ---------------------------------------------------------------------------------------------
// What every answer must be

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max = 300): string {
  return text.length <= max ? JSON.stringify(text) : `${JSON.stringify(text.slice(0, max))}… (${text.length} chars)`;
}

/** null when `body` is exactly `{ error: { code, message, details? } }` with a catalogue code. */
function errorShapeProblem(body: unknown): string | null {
  if (!isRecord(body)) return 'the error body is not an object';
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'error') return `the error body has keys ${JSON.stringify(keys)}, not ["error"]`;
  const error = body.error;
  if (!isRecord(error)) return '`error` is not an object';
  const extra = Object.keys(error).filter((k) => !['code', 'message', 'details'].includes(k));
  if (extra.length > 0) return `\`error\` has keys beyond code, message, details: ${JSON.stringify(extra)}`;
  if (typeof error.code !== 'string' || !Object.hasOwn(ERROR_CATALOGUE, error.code))
    return `error.code ${JSON.stringify(error.code)} is not in ERROR_CATALOGUE`;
  if (typeof error.message !== 'string' || error.message.trim() === '')
    return 'error.message is not a non-empty string';
  return null;
}

function leaks(text: string, sent: string): string[] {
  return LEAK_MARKERS.filter((marker) => text.includes(marker) && !sent.includes(marker));
}

function errorCodeOf(body: unknown): string {
  return isRecord(body) && isRecord(body.error) && typeof body.error.code === 'string' ? body.error.code : '?';
}

function describeRequest(r: HttpRequest): string {
  const who = r.auth.kind === 'bad' ? `Authorization: ${clip(r.auth.header, 40)}` : `auth=${r.auth.kind}`;
  const body =
    r.body.kind === 'text' ? ` content-type=${r.body.contentType ?? '(none)'} body=${clip(r.body.text)}` : '';
  return `${r.op.method} ${clip(r.url)} ${who}${body}`;
}

function httpProblems(r: HttpRequest, status: number, text: string): string[] {
  const problems: string[] = [];
  if (status >= 500) problems.push(`status ${status}`);
  let body: unknown;
  let parsed = false;
  try {
    body = JSON.parse(text);
    parsed = true;
  } catch {
    parsed = false;
  }
  const jsonRoute = r.op.kind === 'api' || r.op.kind === 'unknown';
  // A page of the UI is its index (the app), whatever the path; a file it does not have is a JSON 404.
  if (
    r.op.kind === 'ui' &&
    status < 300 &&
    !/^<!doctype html>/i.test(text) &&
    !/\.[A-Za-z0-9]+$/.test(r.url.split('?')[0]!)
  )
    problems.push(`${r.url} answered ${status} without the UI's page`);
  if (jsonRoute && !parsed) problems.push('the body is not JSON');
  if (status >= 400) {
    const shape = parsed ? errorShapeProblem(body) : 'the error body is not JSON';
    if (shape) problems.push(shape);
  }
  const sent = `${r.url} ${safeDecode(r.url)} ${r.body.kind === 'text' ? r.body.text : ''}`;
  const leaked = leaks(text, sent);
  if (leaked.length > 0) problems.push(`engine text in the body: ${leaked.join(', ')}`);
  if (r.op.kind === 'static' && status === 200 && /"devDependencies"|root:x:0:0/.test(text))
    problems.push('a file outside the docs was served');
  if (r.op.kind === 'api' && r.auth.kind === 'admin' && (status === 401 || status === 403))
    problems.push(`the admin key got ${status}`);
  if (r.auth.kind !== 'admin' && !r.op.public && r.op.kind === 'api' && status !== 401) {
    // Only what the router refuses before any hook runs may answer an anonymous caller otherwise.
    const message = isRecord(body) && isRecord(body.error) ? String(body.error.message) : '';
    const beforeAuth =
      (status === 400 && /URL path is not valid|path parameter is longer/.test(message)) ||
      (status === 404 && message.startsWith('no route'));
    if (!beforeAuth) problems.push(`a caller without a valid key got ${status}, not 401`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------
// WebSockets

interface Frame {
  data: string | Buffer;
  binary: boolean;
}

interface WsOutcome {
  handshakeStatus: number | null;
  handshakeBody: string;
  opened: boolean;
  messages: string[];
  closeCode: number | null;
  closeReason: string;
  closedBy: 'server' | 'client' | null;
  terminated: boolean;
  error: string | null;
}

function describeFrames(path: string, frames: Frame[]): string {
  const shown = frames.map((f) =>
    f.binary ? `<binary ${Buffer.from(f.data).toString('hex').slice(0, 80)}>` : clip(String(f.data), 200),
  );
  return `${clip(path, 200)} frames=[${shown.join(', ')}]`;
}

/** The server's maxPayload: a bigger frame is refused by the protocol (1009), not by the API. */
const MAX_FRAME_BYTES = 1024 * 1024;
const fits = (frame: Frame) => Buffer.byteLength(frame.data) <= MAX_FRAME_BYTES;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------

let t: TestSystem;
let wsBase: string;
let vmId: string;
let createTaskId: string;
let adminKeyId: string;
let ops: Op[] = [];
const started = Date.now();
const timings: string[] = [];
const failures: string[] = [];
const statusCounts = new Map<string, number>();
const closeCounts = new Map<string, number>();
let requestsSent = 0;
/** Outcomes of the property being run, for its line in the summary. */
let outcomes = new Map<string, number>();
let wsConnections = 0;
let wsFramesSent = 0;

function count(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
  if (map !== outcomes) count(outcomes, key);
}

/** Runs one property with the fixed seed; a failure is recorded (shrunk for a bounded time), not thrown. */
async function fuzz<T>(label: string, arb: fc.Arbitrary<T>, numRuns: number, property: (v: T) => Promise<void>) {
  let failedAt: number | null = null;
  const began = Date.now();
  const details = await fc.check(
    fc.asyncProperty(arb, async (value) => {
      // Past the shrink budget every further candidate passes: the last failure stands as the counterexample.
      if (failedAt !== null && Date.now() - failedAt > SHRINK_BUDGET_MS) return;
      try {
        await property(value);
      } catch (err) {
        failedAt ??= Date.now();
        throw err;
      }
    }),
    { seed: SEED, numRuns },
  );
  const seen = [...outcomes.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, n]) => `${k}×${n}`);
  timings.push(`${label}: ${details.numRuns} runs, ${Date.now() - began} ms (${seen.join(', ')})`);
  outcomes = new Map();
  if (details.failed) {
    const error =
      details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    failures.push(
      `${label} [seed ${details.seed}, path ${details.counterexamplePath}, ${details.numShrinks} shrinks]\n  ${error}`,
    );
  }
}

async function send(r: HttpRequest): Promise<LightMyRequestResponse | 'timeout'> {
  const headers: Record<string, string> = {};
  if (r.body.kind === 'text' && r.body.contentType !== null) headers['content-type'] = r.body.contentType;
  if (r.auth.kind === 'bad') headers.authorization = r.auth.header;
  const options: InjectOptions = {
    method: r.op.method,
    url: r.url,
    headers,
    ...(r.body.kind === 'text' ? { payload: r.body.text } : {}),
  };
  const answer = r.auth.kind === 'admin' ? t.app.inject(options) : t.rawInject(options);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), REQUEST_TIMEOUT_MS);
  });
  try {
    return await Promise.race([answer, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Ids the fuzz must not hit on this operation: the VM, worker and key the run itself depends on. */
function protectedIds(op: Op): string[] {
  if (op.key === 'DELETE /api/v1/vms/{id}' || op.key === 'POST /api/v1/vms/{id}/stop') return [VM_NAME, vmId];
  if (/^POST \/api\/v1\/workers\/\{id\}\/(drain|activate|eligibility)$/.test(op.key)) return [WORKER_ID];
  if (op.key === 'DELETE /api/v1/tokens/{id}') return [ADMIN_KEY_NAME, adminKeyId];
  return [];
}

function realIds(op: Op): string[] {
  const guarded = new Set(protectedIds(op));
  const ids = op.path.startsWith('/api/v1/vms/')
    ? [VM_NAME, vmId]
    : op.path.startsWith('/api/v1/workers/')
      ? [WORKER_ID]
      : op.path.startsWith('/api/v1/tasks/')
        ? [createTaskId]
        : op.kind === 'static'
          ? ['swagger-ui.css', 'index.html', 'favicon-32x32.png']
          : [];
  return ids.filter((id) => !guarded.has(id));
}

const STATIC_TRAVERSALS = [
  '../../../package.json',
  '..%2F..%2F..%2Fpackage.json',
  '%2e%2e/%2e%2e/%2e%2e/package.json',
  '....//....//package.json',
  '..\\..\\package.json',
  '/etc/passwd',
  '//etc/passwd',
  '.env',
  'a%00.css',
];

function requestArb(op: Op, overrides: Overrides): fc.Arbitrary<HttpRequest> {
  const guarded = protectedIds(op).map((id) => id.toLowerCase());
  const real = realIds(op);
  const segment =
    op.kind === 'static'
      ? fc.oneof(segmentArb(real), fc.constantFrom(...STATIC_TRAVERSALS))
      : segmentArb(real).map((s) => (guarded.includes(safeDecode(s).trim().toLowerCase()) ? `not-${s}` : s));
  // Requests without hostile values mostly go to the real VM, worker or task, so that they reach its handler.
  const plainSegment =
    op.kind !== 'api'
      ? segment
      : real.length > 0
        ? fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...real) }, { weight: 1, arbitrary: fc.uuid() })
        : fc.oneof(fc.uuid(), fc.stringMatching(/^fz-[a-z0-9-]{1,20}$/));
  // A third of the requests are all as the schema says, so that they get past validation to the handler.
  const build = (hostile: boolean) =>
    fc
      .record({
        auth: authArb(t.adminKey),
        segments: fc.tuple(...op.pathParams.map(() => (hostile ? segment : plainSegment))),
        query: queryArb(op, hostile),
        body: bodyArb(op, overrides, hostile),
      })
      .map(({ auth, segments: values, query, body }): HttpRequest => {
        let i = 0;
        const path = op.path.replace(/\{\w+\}/g, () => values[i++] ?? '');
        return { op, hostile, auth, url: `${path}${query}`, body };
      });
  return fc.oneof({ weight: 1, arbitrary: build(false) }, { weight: 2, arbitrary: build(true) });
}

/** Commands that do nothing whatever their arguments: none runs another program or reads a file it is given. */
const SAFE_COMMANDS = [
  'echo',
  'true',
  'false',
  'printf',
  'pwd',
  '/bin/echo',
  'uname',
  'fuzz-no-such-command',
  './nope',
];

function overridesFor(op: Op): Overrides {
  const map = new Map<string, fc.Arbitrary<unknown>>();
  if (op.key === 'POST /api/v1/vms/{id}/exec') {
    map.set('body.command', fc.constantFrom(...SAFE_COMMANDS));
    map.set('body.timeout', fc.double({ min: 0.001, max: 2, noNaN: true }));
    map.set('body.cwd', fc.constantFrom('/', '/tmp', '.'));
    map.set('body.env.*', fc.oneof(fc.string({ maxLength: 20 }), fc.constantFrom('', '/nonexistent', 'x')));
  }
  if (op.key === 'POST /api/v1/vms')
    map.set('body.name', fc.oneof(fc.stringMatching(/^[a-z0-9]{1,12}$/), fc.constant(VM_NAME)));
  if (op.key === 'POST /api/v1/tokens') {
    map.set('body.name', fc.oneof(fc.stringMatching(/^fz[a-z0-9._-]{0,20}$/), fc.constant(ADMIN_KEY_NAME)));
    map.set(
      'body.expires',
      fc.constantFrom(
        '30d',
        '12h',
        '90m',
        '1s',
        '500ms',
        '0.4ms',
        '1.5h',
        '0s',
        '99999999999999d',
        '1e3d',
        ' 1h ',
        '1H',
      ),
    );
  }
  return map;
}

function runsFor(op: Op): number {
  if (op.key === 'POST /api/v1/vms/{id}/exec') return RUNS.exec;
  if (op.key === 'POST /api/v1/vms') return RUNS.createVm;
  return op.kind === 'api' && op.path.startsWith('/api/v1') ? RUNS.operation : RUNS.extra;
}

function openWs(path: string, frames: Frame[], settleMs: number): Promise<WsOutcome> {
  return new Promise((resolve) => {
    const out: WsOutcome = {
      handshakeStatus: null,
      handshakeBody: '',
      opened: false,
      messages: [],
      closeCode: null,
      closeReason: '',
      closedBy: null,
      terminated: false,
      error: null,
    };
    let done = false;
    let clientClosing = false;
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(hard);
      resolve(out);
    };
    wsConnections++;
    const ws = new WebSocket(`${wsBase}${path}`, { headers: { authorization: `Bearer ${t.adminKey}` } });
    const hard = setTimeout(() => {
      out.terminated = true;
      ws.terminate();
      setTimeout(finish, 50);
    }, WS_CONNECTION_TIMEOUT_MS);
    ws.on('unexpected-response', (request, response) => {
      out.handshakeStatus = response.statusCode ?? 0;
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        out.handshakeBody += chunk;
      });
      response.on('end', () => {
        request.destroy();
        finish();
      });
    });
    ws.on('error', (err) => {
      if (out.handshakeStatus === null) out.error ??= err.message;
    });
    ws.on('message', (data, isBinary) => {
      out.messages.push(isBinary ? `<binary ${String(data).length}>` : String(data));
    });
    ws.on('close', (code, reason) => {
      if (out.handshakeStatus !== null) return;
      out.closeCode = code;
      out.closeReason = String(reason);
      out.closedBy = clientClosing ? 'client' : 'server';
      finish();
    });
    ws.on('open', async () => {
      out.opened = true;
      for (const frame of frames) {
        if (ws.readyState !== ws.OPEN) break;
        ws.send(frame.data, { binary: frame.binary });
        wsFramesSent++;
        await sleep(2);
      }
      const began = Date.now();
      let seen = out.messages.length;
      let quietSince = Date.now();
      while (ws.readyState === ws.OPEN && Date.now() - began < settleMs) {
        await sleep(20);
        if (out.messages.length !== seen) {
          seen = out.messages.length;
          quietSince = Date.now();
        } else if (Date.now() - quietSince > 150 && seen > 0 && frames.length > 0) {
          // Answered and quiet: for the events stream that is all there will be.
          if (path.startsWith('/api/v1/events')) break;
        }
      }
      if (ws.readyState === ws.OPEN) {
        clientClosing = true;
        ws.close(1000, 'fuzz done');
      }
    });
  });
}

function wsProblems(out: WsOutcome, sent: string, ndjson: boolean): string[] {
  const problems: string[] = [];
  if (out.handshakeStatus !== null) {
    count(closeCounts, `handshake ${out.handshakeStatus}`);
    if (out.handshakeStatus >= 500) problems.push(`handshake answered ${out.handshakeStatus}`);
    let body: unknown = null;
    try {
      body = JSON.parse(out.handshakeBody);
    } catch {
      problems.push(`the handshake refusal is not JSON: ${clip(out.handshakeBody)}`);
    }
    const shape = errorShapeProblem(body);
    if (shape) problems.push(`handshake refusal: ${shape}`);
    const leaked = leaks(out.handshakeBody, sent);
    if (leaked.length > 0) problems.push(`engine text in the handshake refusal: ${leaked.join(', ')}`);
    return problems;
  }
  if (!out.opened) {
    problems.push(`never opened: ${out.error ?? 'no reason'}`);
    return problems;
  }
  count(closeCounts, `${out.closedBy ?? 'open'} ${out.closeCode ?? '-'}`);
  if (out.terminated) problems.push(`no close within ${WS_CONNECTION_TIMEOUT_MS} ms`);
  else if (out.closeCode === 1011) problems.push(`closed with 1011 ${clip(out.closeReason)}`);
  else if (out.closeCode === null || !SERVER_CLOSE_CODES.has(out.closeCode))
    problems.push(`closed by the ${out.closedBy} with ${out.closeCode} ${clip(out.closeReason)}`);
  for (const message of out.messages) {
    const leaked = leaks(message, sent);
    if (leaked.length > 0) problems.push(`engine text in a message: ${leaked.join(', ')}: ${clip(message)}`);
    if (message.startsWith('<binary')) continue;
    const lines = ndjson ? message.split('\n').filter((l) => l.length > 0) : [message];
    for (const line of lines) {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        problems.push(`a message is not JSON: ${clip(line)}`);
        continue;
      }
      if (!isRecord(parsed)) {
        problems.push(`a message is not an object: ${clip(line)}`);
        continue;
      }
      if (parsed.type === 'error') {
        if (typeof parsed.code !== 'string' || !Object.hasOwn(ERROR_CATALOGUE, parsed.code))
          problems.push(`an error message has code ${JSON.stringify(parsed.code)}, not in ERROR_CATALOGUE`);
        if (typeof parsed.message !== 'string' || parsed.message.trim() === '')
          problems.push('an error message has no message');
      }
    }
  }
  if (out.closeReason && leaks(out.closeReason, sent).length > 0) problems.push(`engine text in the close reason`);
  return problems;
}

function wsFailure(path: string, frames: Frame[], out: WsOutcome, problems: string[]): Error {
  const got =
    out.handshakeStatus !== null
      ? `handshake ${out.handshakeStatus} ${clip(out.handshakeBody)}`
      : `close ${out.closedBy} ${out.closeCode} ${clip(out.closeReason)}; messages ${clip(out.messages.join(' | '), 600)}`;
  return new Error(`${problems.join('; ')}\n  request: ${describeFrames(path, frames)}\n  response: ${got}`);
}

const text = (value: unknown): Frame => ({ data: JSON.stringify(value) ?? 'null', binary: false });
const rawFrame = fc.oneof(
  fc.constantFrom(...INVALID_JSON).map((data): Frame => ({ data, binary: false })),
  fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes): Frame => ({ data: Buffer.from(bytes), binary: true })),
  fc.jsonValue({ maxDepth: 3 }).map(text),
  deepText.map((data): Frame => ({ data, binary: false })),
);
/** A frame of 100 KB to just under the 1 MiB the server accepts. */
const hugeFrame = (wrap: (filler: string) => unknown) =>
  fc.integer({ min: 100_000, max: 1_040_000 }).map((n) => text(wrap('a'.repeat(n))));

const wsText = fc.oneof({ weight: 3, arbitrary: fc.string({ maxLength: 20 }) }, { weight: 2, arbitrary: hostileText });
const wsHostile = fc.oneof(hostileText, wrongType, longText, structural);

const subscribeValid = fc
  .record(
    {
      type: fc.constant('subscribe'),
      topics: fc.subarray(['worker', 'vm', 'task']),
      worker_id: fc.option(fc.oneof(fc.constant(WORKER_ID), wsText), { nil: null }),
      vm_id: fc.option(fc.oneof(fc.constant('fuzz-vm'), wsText), { nil: null }),
    },
    { requiredKeys: ['type'] },
  )
  .map(text);

const subscribeHostile = fc
  .record(
    {
      type: fc.oneof(fc.constant('subscribe'), wsHostile),
      topics: fc.oneof(
        wsHostile,
        fc.array(fc.oneof(fc.constantFrom('worker', 'vm', 'task'), wsHostile), { maxLength: 4 }),
      ),
      worker_id: wsHostile,
      vm_id: wsHostile,
      extra: wsHostile,
    },
    { requiredKeys: ['type'] },
  )
  .map(text);

const eventsQuery = fc
  .array(
    fc.oneof(
      fc.tuple(
        fc.constantFrom('topics', 'topic'),
        fc.oneof(fc.constantFrom('worker', 'vm,task', 'worker,,vm', ' task '), hostileQueryValue),
      ),
      fc.tuple(fc.constant('since'), fc.oneof(fc.constantFrom('0', '1', '5'), hostileQueryValue)),
      fc.tuple(
        fc.constantFrom('worker_id', 'vm_id'),
        fc.oneof(fc.constantFrom(WORKER_ID, 'fuzz-vm'), hostileQueryValue),
      ),
      fc.tuple(fc.constantFrom('foo', '__proto__'), hostileQueryValue),
    ),
    { maxLength: 3 },
  )
  .map((pairs) => (pairs.length > 0 ? `?${pairs.map(([k, v]) => `${k}=${v}`).join('&')}` : ''));

interface StartFields {
  args: fc.Arbitrary<unknown>;
  env: fc.Arbitrary<unknown>;
  cwd: fc.Arbitrary<unknown>;
  timeout: fc.Arbitrary<unknown>;
}

const startFields = (command: fc.Arbitrary<unknown>, fields: StartFields) =>
  fc.record({ type: fc.constant('start'), command, ...fields }, { requiredKeys: ['type', 'command'] });

const plainText = fc.string({ maxLength: 20 });
const validFields: StartFields = {
  args: fc.array(plainText, { maxLength: 4 }),
  env: fc.dictionary(plainKey, plainText, { maxKeys: 3 }),
  cwd: fc.constantFrom('/', '/tmp', '.'),
  timeout: fc.double({ min: 0.001, max: 1.5, noNaN: true }),
};
const orHostile = (valid: fc.Arbitrary<unknown>, nearly: fc.Arbitrary<unknown>) =>
  fc.oneof({ weight: 2, arbitrary: valid }, { weight: 2, arbitrary: nearly }, { weight: 1, arbitrary: wsHostile });

/** A start the server accepts: a command that ends by itself (or is given a timeout), safe with any arguments. */
const startValid = fc
  .tuple(startFields(fc.constantFrom(...SAFE_COMMANDS, 'cat'), validFields), fc.boolean())
  .map(([start, forceTimeout]) =>
    text(
      start.command === 'cat'
        ? { ...start, timeout: Math.min(Number(start.timeout ?? 0.3), 0.3) }
        : forceTimeout
          ? { ...start, timeout: start.timeout ?? 1 }
          : start,
    ),
  );

const startHostile = startFields(fc.oneof(fc.constantFrom(...SAFE_COMMANDS), wsHostile), {
  args: orHostile(validFields.args, fc.array(fc.oneof(wsText, longText), { maxLength: 4 })),
  env: orHostile(validFields.env, fc.dictionary(recordKey, fc.oneof(wsText, longText), { maxKeys: 3 })),
  cwd: orHostile(validFields.cwd, fc.constantFrom('..', '../..', '/nonexistent', 'rel', '/etc/passwd', '')),
  timeout: orHostile(validFields.timeout, hostileNumber({ minimum: 0.001, maximum: 86_400 })),
}).map((start) => {
  // Hostile fields, but never a command left running without a timeout.
  const given = start.timeout;
  const timeout = typeof given === 'number' && given > 2 && given <= 86_400 ? 1 : (given ?? 1);
  return text({ ...start, timeout });
});

const execLater = fc.oneof(
  fc.record({ type: fc.constant('stdin'), data: fc.oneof(wsText, longText) }).map(text),
  fc.constantFrom({ type: 'stdin_end' }, { type: 'cancel' }).map(text),
  fc.record({ type: fc.constantFrom('stdin', 'start', 'exit'), data: wsHostile }).map(text),
  rawFrame,
);

describe('the API under a seeded fuzz', () => {
  beforeAll(async () => {
    const began = Date.now();
    t = await startTestSystem({ api_gateway: { exec_wait: '3s', rate_limit: { max: 1_000_000 } } });
    wsBase = (await t.app.listen({ port: 0, host: '127.0.0.1' })).replace('http', 'ws');
    const created = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms?wait=true&timeout=60',
      payload: { name: VM_NAME, driver: 'process' },
    });
    expect(created.statusCode, created.body).toBe(201);
    const body = JSON.parse(created.body) as { vm: { id: string; status: string }; task_id: string };
    expect(body.vm.status).toBe('running');
    vmId = body.vm.id;
    createTaskId = body.task_id;
    const keys = JSON.parse((await t.app.inject({ method: 'GET', url: '/api/v1/tokens' })).body) as {
      tokens: { id: string; name: string }[];
    };
    adminKeyId = keys.tokens.find((k) => k.name === ADMIN_KEY_NAME)!.id;
    const doc = await t.rawInject({ method: 'GET', url: '/api/docs/json' });
    expect(doc.statusCode).toBe(200);
    ops = operationsOf(JSON.parse(doc.body) as { paths: Record<string, Record<string, OperationDoc>> });
    timings.push(`start-up (system, ${VM_NAME}, document): ${Date.now() - began} ms`);
  }, 120_000);

  afterAll(async () => {
    const distribution = [...statusCounts.entries()].sort(([a], [b]) => a.localeCompare(b));
    const closes = [...closeCounts.entries()].sort(([a], [b]) => a.localeCompare(b));
    console.log(
      [
        `API fuzz, seed ${SEED}: ${requestsSent} HTTP requests over ${ops.length} operations; ` +
          `${wsConnections} WebSocket connections, ${wsFramesSent} frames; ${Date.now() - started} ms in all`,
        'HTTP status (and error code):',
        ...distribution.map(([k, n]) => `  ${k}: ${n}`),
        'WebSocket outcomes (handshake status, or who closed and the code):',
        ...closes.map(([k, n]) => `  ${k}: ${n}`),
        'Timings:',
        ...timings.map((line) => `  ${line}`),
        failures.length > 0 ? `${failures.length} failure(s):\n${failures.join('\n')}` : 'No failures.',
      ].join('\n'),
    );
    await t?.stop();
  });

  it('every operation of the OpenAPI document answers any request below 500, as JSON, with errors in the API format', async () => {
    expect(ops.length).toBeGreaterThan(20);
    const before = failures.length;
    for (const op of ops) {
      await fuzz(op.key, requestArb(op, overridesFor(op)), runsFor(op), async (r) => {
        requestsSent++;
        const res = await send(r);
        if (res === 'timeout')
          throw new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms\n  request: ${describeRequest(r)}`);
        let parsed: unknown = null;
        try {
          parsed = JSON.parse(res.body);
        } catch {
          parsed = null;
        }
        count(
          statusCounts,
          res.statusCode >= 400 ? `${res.statusCode} ${errorCodeOf(parsed)}` : String(res.statusCode),
        );
        const problems = httpProblems(r, res.statusCode, res.body);
        if (problems.length > 0)
          throw new Error(
            `${problems.join('; ')}\n  request: ${describeRequest(r)}\n  response: ${res.statusCode} ${clip(res.body, 600)}`,
          );
      });
    }
    expect(failures.slice(before)).toEqual([]);
  }, 180_000);

  it('both WebSockets refuse a bad URL at the handshake, in the API format', async () => {
    const before = failures.length;
    const subscribe = text({ type: 'subscribe', topics: ['vm'] });
    await fuzz('WS handshake /api/v1/events', eventsQuery, RUNS.handshake, async (query) => {
      const path = `/api/v1/events${query}`;
      const out = await openWs(path, [subscribe], 300);
      const problems = wsProblems(out, `${path} ${safeDecode(path)}`, true);
      if (problems.length > 0) throw wsFailure(path, [subscribe], out, problems);
    });
    const start = text({ type: 'start', command: 'echo', args: ['hi'] });
    const ids = fc.tuple(segmentArb([VM_NAME, vmId]), fc.option(hostileQueryValue, { nil: null }));
    await fuzz('WS handshake /api/v1/vms/{id}/exec/stream', ids, RUNS.handshake, async ([id, query]) => {
      const path = `/api/v1/vms/${id}/exec/stream${query === null ? '' : `?x=${query}`}`;
      const out = await openWs(path, [start], 1500);
      const problems = wsProblems(out, `${path} ${safeDecode(path)}`, false);
      if (problems.length > 0) throw wsFailure(path, [start], out, problems);
    });
    expect(failures.slice(before)).toEqual([]);
  }, 120_000);

  it('the events WebSocket takes any frames without a fault', async () => {
    const before = failures.length;
    const frame = fc.oneof(
      { weight: 3, arbitrary: subscribeValid },
      { weight: 3, arbitrary: subscribeHostile },
      { weight: 3, arbitrary: rawFrame },
      { weight: 1, arbitrary: hugeFrame((filler) => ({ type: 'subscribe', worker_id: filler })) },
    );
    const query = fc.constantFrom('', '?topics=vm,task', `?worker_id=${WORKER_ID}`, '?since=0', `?vm_id=${VM_NAME}`);
    const session = fc.record({ query, frames: fc.array(frame.filter(fits), { minLength: 1, maxLength: 4 }) });
    await fuzz('WS /api/v1/events', session, RUNS.eventsWs, async ({ query, frames }) => {
      const path = `/api/v1/events${query}`;
      const out = await openWs(path, frames, 600);
      const sent = `${path} ${frames.map((f) => String(f.data)).join(' ')}`;
      const problems = wsProblems(out, sent, true);
      if (problems.length > 0) throw wsFailure(path, frames, out, problems);
    });
    expect(failures.slice(before)).toEqual([]);
  }, 120_000);

  it('the exec WebSocket takes any frames without a fault', async () => {
    const before = failures.length;
    const first = fc.oneof(
      { weight: 4, arbitrary: startValid },
      { weight: 4, arbitrary: startHostile },
      {
        weight: 1,
        arbitrary: fc
          .constantFrom({ type: 'stdin', data: 'early\n' }, { type: 'cancel' }, { type: 'stdin_end' })
          .map(text),
      },
      { weight: 2, arbitrary: rawFrame },
      {
        weight: 1,
        arbitrary: hugeFrame((filler) => ({
          type: 'start',
          command: 'true',
          args: [filler.slice(0, 131_071)],
          env: { F: filler.slice(131_071, 250_000) },
        })),
      },
      { weight: 1, arbitrary: hugeFrame((filler) => ({ type: 'start', command: filler, timeout: 1 })) },
    );
    // Mostly the real VM; sometimes one that does not exist, which the start message finds out.
    const vm = fc.oneof({ weight: 6, arbitrary: fc.constantFrom(VM_NAME, vmId) }, { weight: 1, arbitrary: fc.uuid() });
    const session = fc.record({
      vm,
      frames: fc
        .tuple(first.filter(fits), fc.array(execLater.filter(fits), { maxLength: 3 }))
        .map(([a, rest]) => [a, ...rest]),
    });
    await fuzz('WS /api/v1/vms/{id}/exec/stream', session, RUNS.execWs, async ({ vm, frames }) => {
      const path = `/api/v1/vms/${vm}/exec/stream`;
      const out = await openWs(path, frames, 1500);
      const sent = `${path} ${frames.map((f) => String(f.data)).join(' ')}`;
      const problems = wsProblems(out, sent, false);
      if (problems.length > 0) throw wsFailure(path, frames, out, problems);
    });
    expect(failures.slice(before)).toEqual([]);
  }, 120_000);

  it(`after the fuzz the server is healthy and ${VM_NAME} still runs commands`, async () => {
    const health = await t.rawInject({ method: 'GET', url: '/health' });
    expect(health.statusCode, health.body).toBe(200);
    let status = '';
    for (let i = 0; i < 100 && status !== 'running'; i++) {
      status = (
        JSON.parse((await t.app.inject({ method: 'GET', url: `/api/v1/vms/${VM_NAME}` })).body) as { status: string }
      ).status;
      if (status !== 'running') await sleep(100);
    }
    expect(status).toBe('running');
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/vms/${VM_NAME}/exec`,
      payload: { command: 'echo', args: ['ok'] },
    });
    expect(res.statusCode, res.body).toBe(200);
    expect(JSON.parse(res.body)).toMatchObject({ exit_code: 0, stdout: 'ok\n' });
  }, 30_000);
});
