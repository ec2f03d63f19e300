/**
 * c. A heartbeat storm: 10,000 simulated workers (sim-worker.ts: the real client end of the agent
 * channel, one mutual-TLS WebSocket each, since the channel carries one worker per connection)
 * register, then each heartbeats every 10 s (the default interval), phases spread evenly, so the
 * control plane takes about 1,000 heartbeats a second. Measured: each heartbeat's round trip as
 * the worker sees it, the control plane's CPU and memory (its own process), and how long the
 * fleet took to connect. The suite's own event-loop delay is printed too: the clients share the
 * two cores, and a late client inflates what it measures.
 * Environment: LOAD_HEARTBEAT_WORKERS (10000), LOAD_HEARTBEAT_SECONDS (25),
 * LOAD_HEARTBEAT_INTERVAL_MS (10000), LOAD_HEARTBEAT_RAMP_CONCURRENCY (200),
 * LOAD_HEARTBEAT_RAMP_SECONDS (75: workers not connected by then are left out, and said so).
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { startControlPlane } from './control-plane.ts';
import { ProcessSampler } from './proc-usage.ts';
import { envNumber, type Scenario } from './scenario.ts';
import { SimWorker } from './sim-worker.ts';
import { cell } from './report.ts';
import { percentile, pool, round, sleep } from './stats.ts';
import { WorkerCertMinter } from './worker-certs.ts';

const TARGET_P99_MS = 20;

export const heartbeatStorm: Scenario = {
  name: 'heartbeats',
  title: 'c. heartbeat storm: 10,000 workers every 10 s',
  budgetMs: 200_000,
  async run({ engines, scope, log }) {
    const count = envNumber('LOAD_HEARTBEAT_WORKERS', 10_000);
    const seconds = envNumber('LOAD_HEARTBEAT_SECONDS', 25);
    const intervalMs = envNumber('LOAD_HEARTBEAT_INTERVAL_MS', 10_000);
    const rampConcurrency = envNumber('LOAD_HEARTBEAT_RAMP_CONCURRENCY', 200);
    const rampSeconds = envNumber('LOAD_HEARTBEAT_RAMP_SECONDS', 75);
    const shared = await engines();
    const cp = await startControlPlane(shared, scope);
    const width = String(count - 1).length;
    const idOf = (i: number) => `hb-${String(i).padStart(width, '0')}`;
    const minter = await WorkerCertMinter.create(cp.ca, cp.caKeyPem, idOf(0));
    const sims = Array.from(
      { length: count },
      (_, i) => new SimWorker(idOf(i), cp.agent, { ca: minter.caPem, cert: minter.mint(idOf(i)), key: minter.keyPem }),
    );
    scope.defer('simulated workers', async () => {
      await Promise.all(sims.map((s) => s.close().catch(() => undefined)));
    });

    // Every worker beats on its own slot from the moment it is registered, during the ramp too (as
    // real ones do: a worker silent for its TTL is marked offline). Worker i's slot is i/count of
    // the interval: an even spread. Only beats sent inside the measured window are counted.
    const registered = new Uint8Array(count);
    const latencies: number[] = [];
    const failures: string[] = [];
    const inFlight = new Set<Promise<void>>();
    let measuring = false;
    let lastAnswer = 0;
    let sentInWindow = 0;
    let failedOutsideWindow = 0;
    const beat = (i: number) => {
      if (!registered[i]) return;
      const sim = sims[i]!;
      const counted = measuring;
      if (counted) sentInWindow++;
      const call = sim
        .heartbeat()
        .then((ms) => {
          if (!counted) return;
          latencies.push(ms);
          lastAnswer = performance.now();
        })
        .catch((err: Error) => {
          if (counted) failures.push(`${sim.id}: ${err.message}`);
          else failedOutsideWindow++;
        })
        .finally(() => inFlight.delete(call));
      if (counted) inFlight.add(call);
    };
    const epoch = performance.now();
    let sent = 0;
    const ticker = setInterval(() => {
      const due = Math.floor(((performance.now() - epoch) / intervalMs) * count);
      for (; sent < due; sent++) beat(sent % count);
    }, 5);
    scope.defer('heartbeat clock', () => clearInterval(ticker));

    log(`${count} simulated workers connect and register, ${rampConcurrency} at a time, for at most ${rampSeconds} s`);
    let sampler = new ProcessSampler(cp.pid, shared);
    const rampFailures: string[] = [];
    const connectMs: number[] = [];
    const registerMs: number[] = [];
    let notStarted = 0;
    await pool(count, rampConcurrency, async (i) => {
      if (performance.now() - epoch > rampSeconds * 1000) {
        notStarted++;
        return;
      }
      try {
        let started = performance.now();
        await sims[i]!.connect();
        connectMs.push(performance.now() - started);
        started = performance.now();
        await sims[i]!.register();
        registerMs.push(performance.now() - started);
        registered[i] = 1;
      } catch (err) {
        rampFailures.push(`${sims[i]!.id}: ${(err as Error).message}`);
      }
    });
    const ramp = sampler.stop();
    const connected = registered.reduce((n, r) => n + r, 0);
    const stats = await cp.api<{ active_workers: number; healthy_workers: number }>('GET', '/cluster/stats');
    log(`${connected} registered, ${stats.body.active_workers} active; measuring heartbeats for ${seconds} s`);

    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    sampler = new ProcessSampler(cp.pid, shared);
    measuring = true;
    const t0 = performance.now();
    await sleep(seconds * 1000);
    measuring = false;
    const elapsed = (performance.now() - t0) / 1000;
    await Promise.race([Promise.all(inFlight), sleep(15_000)]);
    const storm = sampler.stop();
    loop.disable();
    clearInterval(ticker);
    for (const failure of [...rampFailures, ...failures].slice(0, 5)) log(`failed: ${failure}`);

    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    // Answered over the time it took to answer them: below the offered rate when the CP fell behind.
    const rate = latencies.length / (Math.max(lastAnswer - t0, elapsed * 1000) / 1000);
    const offered = sentInWindow / elapsed;
    return {
      tables: [
        {
          title: `${count} simulated workers, one connection each, heartbeat every ${intervalMs / 1000} s for ${seconds} s`,
          table: {
            headers: ['phase', 'what', 'value'],
            rows: [
              ['connect + register', 'workers registered', connected],
              ['connect + register', 'seconds', round(ramp.seconds, 1)],
              ['connect + register', 'workers/s', round(connected / ramp.seconds, 0)],
              ['connect + register', 'failed', rampFailures.length],
              ['connect + register', `not started (past ${rampSeconds} s)`, notStarted],
              [
                'connect + register',
                'mTLS connect p50 / p99 (ms)',
                `${cell(percentile(connectMs, 0.5))} / ${cell(percentile(connectMs, 0.99))}`,
              ],
              [
                'connect + register',
                'register p50 / p99 (ms)',
                `${cell(percentile(registerMs, 0.5))} / ${cell(percentile(registerMs, 0.99))}`,
              ],
              ['connect + register', 'heartbeats failed meanwhile', failedOutsideWindow],
              ['connect + register', 'CP CPU (% of a core)', ramp.cpu_percent],
              ['connect + register', 'active workers in /cluster/stats', stats.body.active_workers],
              ['connect + register', 'Postgres CPU (% of a core)', ramp.postgres_cpu_percent],
              ['heartbeats', 'sent per second', round(offered, 0)],
              ['heartbeats', 'answered', latencies.length],
              ['heartbeats', 'answered per second', round(rate, 0)],
              ['heartbeats', 'p50 (ms)', p50],
              ['heartbeats', 'p99 (ms)', p99],
              ['heartbeats', 'max (ms)', percentile(latencies, 1)],
              ['heartbeats', 'failed', failures.length],
              ['heartbeats', 'CP CPU (% of a core)', storm.cpu_percent],
              ['heartbeats', 'CP RSS (MB), peak', storm.peak_rss_mb],
              ['heartbeats', 'Postgres CPU (% of a core)', storm.postgres_cpu_percent],
              ['heartbeats', 'Redis CPU (% of a core)', storm.redis_cpu_percent],
              ['heartbeats', 'suite CPU (% of a core)', storm.suite_cpu_percent],
              ['heartbeats', 'suite event-loop delay p99 (ms)', round(loop.percentile(99) / 1e6, 1)],
            ],
          },
        },
      ],
      summary: [
        {
          scenario: 'c. heartbeats',
          metric: `workers connected and registered`,
          value: connected,
          unit: '',
          target: { op: '>=', value: count },
        },
        {
          scenario: 'c. heartbeats',
          metric: 'heartbeats answered per second',
          value: round(rate, 0),
          unit: '/s',
          target: { op: '>=', value: Math.floor((count / (intervalMs / 1000)) * 0.95) },
        },
        { scenario: 'c. heartbeats', metric: 'heartbeat p50', value: p50, unit: 'ms' },
        {
          scenario: 'c. heartbeats',
          metric: 'heartbeat p99',
          value: p99,
          unit: 'ms',
          target: { op: '<=', value: TARGET_P99_MS },
        },
        { scenario: 'c. heartbeats', metric: 'CP CPU during the storm', value: storm.cpu_percent, unit: '% of a core' },
        { scenario: 'c. heartbeats', metric: 'CP peak RSS with all connected', value: storm.peak_rss_mb, unit: 'MB' },
      ],
      notes: [
        'Simulated workers register and heartbeat only: they pull no queue and send no metrics, so the control plane holds no queue consumer for them.',
        'Heartbeat latency is the call round trip on the agent channel as the worker sees it (TLS, frame, the node guard, two store queries).',
      ],
      details: {
        workers: count,
        seconds,
        interval_ms: intervalMs,
        ramp,
        storm,
        failures: [...rampFailures, ...failures].slice(0, 20),
        loop_delay_ms: { p50: loop.percentile(50) / 1e6, p99: loop.percentile(99) / 1e6, max: loop.max / 1e6 },
      },
    };
  },
};
