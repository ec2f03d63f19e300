/**
 * Spans for API requests and task runs. Without an exporter (the default) a span is only its ids:
 * the trace context still travels from the API call to the task and into every log line. With
 * `telemetry.otlp.endpoint` set, spans are batched to an OpenTelemetry collector over OTLP/HTTP.
 */
import { ROOT_CONTEXT, type Span as OtelSpan, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { newSpanId, newTraceId, type TraceContext } from './trace-context.ts';

export type SpanAttributes = Record<string, string | number | boolean>;

export interface Span {
  readonly context: TraceContext;
  end(attributes?: SpanAttributes, error?: string | null): void;
}

export interface Tracing {
  /** A span in `parent`'s trace (a new trace without one). */
  start(name: string, kind: 'server' | 'internal', parent: TraceContext | null, attributes?: SpanAttributes): Span;
  /** Sends what is batched and stops. */
  shutdown(): Promise<void>;
}

export interface OtlpOptions {
  endpoint: string | null;
  headers: Record<string, string>;
  service_name: string;
}

/** Ids only: nothing leaves the process. */
export const idOnlyTracing: Tracing = {
  start: (_name, _kind, parent) => ({
    context: { traceId: parent?.traceId ?? newTraceId(), spanId: newSpanId(), flags: parent?.flags ?? '01' },
    end: () => {},
  }),
  shutdown: async () => {},
};

export function createTracing(options: OtlpOptions, role: string, version: string): Tracing {
  if (!options.endpoint) return idOnlyTracing;
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({
      'service.name': options.service_name,
      'service.version': version,
      'aetherium.role': role,
    }),
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: options.endpoint, headers: options.headers }), {
        scheduledDelayMillis: 2000,
      }),
    ],
  });
  const tracer: Tracer = provider.getTracer('aetherium', version);
  return {
    start(name, kind, parent, attributes) {
      const context = parent
        ? trace.setSpanContext(ROOT_CONTEXT, {
            traceId: parent.traceId,
            spanId: parent.spanId,
            traceFlags: Number.parseInt(parent.flags, 16),
            isRemote: true,
          })
        : ROOT_CONTEXT;
      const span: OtelSpan = tracer.startSpan(
        name,
        { kind: kind === 'server' ? SpanKind.SERVER : SpanKind.INTERNAL, ...(attributes ? { attributes } : {}) },
        context,
      );
      const own = span.spanContext();
      return {
        context: { traceId: own.traceId, spanId: own.spanId, flags: own.traceFlags.toString(16).padStart(2, '0') },
        end(more, error) {
          if (more) span.setAttributes(more);
          if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error });
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
