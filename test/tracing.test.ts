/**
 * One API call, followed everywhere: its request id and W3C trace context are carried on the task
 * it makes, named on every log line about the work (API, scheduler, worker), and, with
 * telemetry.otlp set, exported as spans of one trace to an OTLP/HTTP receiver run by the test.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatTraceparent, parseTraceparent } from '../src/observability/trace-context.ts';
import { loggerOptions } from '../src/runtime/logger.ts';
import { startTestSystem, type TestSystem } from './harness/dev-system.ts';
import { eventuallyPasses } from './harness/eventually.ts';

describe('parseTraceparent', () => {
  const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
  const span = '00f067aa0ba902b7';
  it('reads a valid header, and formats it back', () => {
    const context = parseTraceparent(`00-${trace}-${span}-01`);
    expect(context).toEqual({ traceId: trace, spanId: span, flags: '01' });
    expect(formatTraceparent(context!)).toBe(`00-${trace}-${span}-01`);
    // A later version is read for its first fields (the spec's forward compatibility).
    expect(parseTraceparent(`cc-${trace}-${span}-01-what-comes-next`)?.traceId).toBe(trace);
  });
  it.each([
    ['all-zero trace id', `00-${'0'.repeat(32)}-${span}-01`],
    ['all-zero span id', `00-${trace}-${'0'.repeat(16)}-01`],
    ['version ff', `ff-${trace}-${span}-01`],
    ['version 00 with more fields', `00-${trace}-${span}-01-extra`],
    ['short trace id', `00-${trace.slice(1)}-${span}-01`],
    ['not hex', `00-${'z'.repeat(32)}-${span}-01`],
    ['empty', ''],
  ])('ignores %s', (_what, header) => {
    expect(parseTraceparent(header)).toBeNull();
  });
});

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
}

describe('a request followed through logs and spans', () => {
  let t: TestSystem;
  let receiver: Server;
  const exports: { headers: Record<string, unknown>; body: string }[] = [];
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => {
        if (req.url === '/v1/traces') exports.push({ headers: req.headers, body });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    const { port } = receiver.address() as AddressInfo;
    const sink = new Writable({
      write(chunk, _encoding, done) {
        for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    t = await startTestSystem(
      {
        telemetry: {
          otlp: {
            endpoint: `http://127.0.0.1:${port}/v1/traces`,
            headers: { 'x-collector-key': 'secret-collector-key' },
            service_name: 'aetherium-test',
          },
        },
      },
      { log: pino(loggerOptions({ level: 'info' }), sink) },
    );
  }, 120_000);

  afterAll(async () => {
    await t?.stop();
    await new Promise((resolve) => receiver?.close(resolve));
  });

  it('carries the caller’s trace and request id from the API to the task, the scheduler and the worker', async () => {
    const traceId = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
    const callerSpan = '1122334455667788';
    const requestId = 'build-4711-step-3';
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/vms?wait=true&timeout=60',
      headers: { traceparent: `00-${traceId}-${callerSpan}-01`, 'x-request-id': requestId },
      payload: { name: 'traced', vcpus: 1, memory_mb: 64 },
    });
    expect(res.statusCode, res.body).toBe(201);
    expect(res.headers['x-request-id']).toBe(requestId);
    const task = (await t.app.inject({ method: 'GET', url: `/api/v1/tasks/${res.json().task_id}` })).json();
    expect(task.trace.request_id).toBe(requestId);
    const carried = parseTraceparent(task.trace.traceparent);
    expect(carried?.traceId).toBe(traceId);
    expect(carried?.spanId).not.toBe(callerSpan); // the API request's own span, a child of the caller's

    // Every line about the work names the request, the trace and the task, whoever wrote it.
    await eventuallyPasses(
      () => {
        const about = lines.filter((l) => l.task_id === task.id);
        const messages = about.map((l) => l.msg);
        expect(messages).toContain('task placed');
        expect(messages).toContain('task finished');
        for (const line of about) expect(line).toMatchObject({ request_id: requestId, trace_id: traceId });
        expect(new Set(about.map((l) => l.component))).toEqual(new Set(['scheduler', 'worker']));
      },
      10_000,
      100,
    );

    // A request without trace headers gets a new trace and a new id; the caller's bad id is not taken.
    const plain = await t.app.inject({ method: 'GET', url: '/api/v1/vms', headers: { 'x-request-id': 'a b' } });
    expect(plain.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const exec = await t.app.inject({ method: 'POST', url: '/api/v1/vms/traced/exec', payload: { command: 'true' } });
    const execTask = (await t.app.inject({ method: 'GET', url: `/api/v1/tasks/${exec.json().task_id}` })).json();
    expect(execTask.trace.request_id).toBe(exec.headers['x-request-id']);
    expect(parseTraceparent(execTask.trace.traceparent)?.traceId).not.toBe(traceId);

    // Stopping flushes the batched spans: the API span is the caller's child, the task's is the API's.
    await t.stop();
    const spans: OtlpSpan[] = exports.flatMap(
      (e) =>
        JSON.parse(e.body).resourceSpans.flatMap((r: { scopeSpans: { spans: OtlpSpan[] }[] }) =>
          r.scopeSpans.flatMap((s) => s.spans),
        ) as OtlpSpan[],
    );
    expect(exports[0]?.headers['x-collector-key']).toBe('secret-collector-key');
    const mine = spans.filter((s) => s.traceId === traceId);
    const api = mine.find((s) => s.name === 'POST /api/v1/vms');
    expect(api, JSON.stringify(mine)).toBeDefined();
    expect(api!.parentSpanId).toBe(callerSpan);
    expect(api!.spanId).toBe(carried!.spanId);
    const run = mine.find((s) => s.name === 'task vm:create');
    expect(run?.parentSpanId).toBe(api!.spanId);
    expect(JSON.parse(exports[0]!.body).resourceSpans[0].resource.attributes).toContainEqual({
      key: 'service.name',
      value: { stringValue: 'aetherium-test' },
    });
  });
});
