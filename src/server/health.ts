/** `GET /health`: each engine's state, and any driver warning an operator must see. */
import { errorMessage, redactSecrets } from '../domain/index.ts';

export interface EngineState {
  kind: string;
  ok: boolean;
  error?: string;
  latency_ms?: number;
}

export interface HealthReport {
  status: 'ok' | 'degraded';
  mode: string;
  version: string;
  engines: Record<string, EngineState>;
  warnings: string[];
}

export type HealthProbe = { name: string; kind: string; check: () => Promise<void> };

export async function checkHealth(
  mode: string,
  version: string,
  probes: HealthProbe[],
  warnings: () => string[],
): Promise<HealthReport> {
  const engines: Record<string, EngineState> = {};
  await Promise.all(
    probes.map(async (probe) => {
      const started = performance.now();
      try {
        await probe.check();
        engines[probe.name] = {
          kind: probe.kind,
          ok: true,
          latency_ms: Math.round((performance.now() - started) * 100) / 100,
        };
      } catch (err) {
        engines[probe.name] = { kind: probe.kind, ok: false, error: redactSecrets(errorMessage(err)) };
      }
    }),
  );
  const ok = Object.values(engines).every((e) => e.ok);
  return { status: ok ? 'ok' : 'degraded', mode, version, engines, warnings: warnings() };
}
