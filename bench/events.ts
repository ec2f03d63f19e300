/**
 * `npm run bench:events [-- --runs 3 --seconds 10]`: 1,000 WebSocket clients on one control plane
 * (`aetherium server`, a separate process) while events are published at 500 per second through
 * Redis, as another replica would.
 *
 * Three processes share the machine: the control plane, the clients (bench/event-clients.ts, a
 * process of their own) and this one (the publisher), besides Redis. So that a reader can tell the
 * server's time from the clients', each run prints:
 * - client-observed latency: from the publisher stamping the event to a client reading its frame;
 * - server-side latency: from `publish` stamping the event's timestamp to the control plane
 *   writing it to a client's socket, from the server's own histogram
 *   (`aetherium_event_stream_lag_seconds` on /metrics; percentiles interpolated within its buckets,
 *   the shares within 50 and 100 ms exact, those being bucket bounds);
 * - the CPU of the control plane, of the clients' process and of Redis, and the event-loop delay of
 *   the control plane and of the clients (a busy client loop delays what the clients observe, not
 *   what the server does);
 * - how busy the machine was, and how much of it went to processes other than this bench's.
 * It ends with the median of the runs. A short warm-up (not measured) comes first. Every wait is
 * bounded, and a watchdog ends the bench if anything hangs.
 */
import { type ChildProcess, fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { RedisEventBus } from '../src/adapters/events/redis-event-bus.ts';
import { CLI, freePort, waitForHttp } from '../test/harness/processes.ts';
import { createDatabase, startPostgres } from '../test/harness/postgres.ts';
import { startRedis } from '../test/harness/redis.ts';
import { timedEvent } from '../test/harness/sample-events.ts';
import type { ClientReport } from './event-clients.ts';

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string' },
    seconds: { type: 'string' },
    clients: { type: 'string' },
    rate: { type: 'string' },
  },
});
const CLIENTS = Number(args.clients ?? process.env.CLIENTS ?? 1000);
const RATE = Number(args.rate ?? process.env.RATE ?? 500);
const SECONDS = Number(args.seconds ?? process.env.SECONDS ?? 10);
const RUNS = Math.max(1, Number(args.runs ?? process.env.RUNS ?? 3));
const WARMUP_SECONDS = Number(process.env.WARMUP ?? 2);
/** After the last publish of a run: time for the last deliveries to arrive. */
const DRAIN_MS = 1000;
const LAG_METRIC = 'aetherium_event_stream_lag_seconds';

// Ends the bench whatever hangs: the set-up (Postgres, Redis, the server) takes well under a minute.
const watchdog = setTimeout(
  () => {
    console.error('bench:events: did not finish in time; stopping');
    process.exit(2);
  },
  (120 + WARMUP_SECONDS + RUNS * (SECONDS + 10)) * 1000,
);
watchdog.unref();

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

/** CPU seconds the whole machine spent busy (every core, every process), from /proc/stat. */
function machineBusySeconds(): number {
  const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .map(Number);
  return (user! + nice! + system! + irq! + softirq! + steal!) / 100;
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
}

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The next IPC message of `type` from the clients' process. */
function nextMessage<T>(child: ChildProcess, type: string, ms = 60_000): Promise<T> {
  return withTimeout(
    new Promise<T>((resolve, reject) => {
      const onMessage = (message: { type: string }) => {
        if (message.type !== type) return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        resolve(message as T);
      };
      const onExit = (code: number | null) => reject(new Error(`the clients' process exited (${code})`));
      child.on('message', onMessage);
      child.once('exit', onExit);
    }),
    ms,
    `clients' ${type}`,
  );
}

/** Cumulative bucket counts of a histogram (upper bound → count) and a few gauges, from /metrics. */
interface Scrape {
  lagBuckets: Map<number, number>;
  loopLagP99: number;
}

async function scrape(base: string, token: string): Promise<Scrape> {
  const response = await withTimeout(
    fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${token}` } }),
    10_000,
    '/metrics',
  );
  if (!response.ok) throw new Error(`/metrics answered ${response.status}`);
  const text = await response.text();
  const lagBuckets = new Map<number, number>();
  let loopLagP99 = Number.NaN;
  for (const line of text.split('\n')) {
    const bucket = new RegExp(`^${LAG_METRIC}_bucket\\{le="([^"]+)"\\} (\\S+)`).exec(line);
    if (bucket) lagBuckets.set(bucket[1] === '+Inf' ? Infinity : Number(bucket[1]), Number(bucket[2]));
    else if (line.startsWith('nodejs_eventloop_lag_p99_seconds ')) loopLagP99 = Number(line.split(' ')[1]);
  }
  return { lagBuckets, loopLagP99 };
}

/** Percentiles of the deliveries between two scrapes, interpolated within buckets (as PromQL does). */
function serverLatency(before: Scrape, after: Scrape) {
  const bounds = [...after.lagBuckets.keys()].sort((a, b) => a - b);
  const cumulative = bounds.map((le) => (after.lagBuckets.get(le) ?? 0) - (before.lagBuckets.get(le) ?? 0));
  const total = cumulative[cumulative.length - 1] ?? 0;
  const quantile = (q: number) => {
    const rank = q * total;
    for (let i = 0; i < bounds.length; i++) {
      if (cumulative[i]! < rank) continue;
      const upper = bounds[i]!;
      const lower = i === 0 ? 0 : bounds[i - 1]!;
      if (upper === Infinity) return lower * 1000;
      const below = i === 0 ? 0 : cumulative[i - 1]!;
      const inBucket = cumulative[i]! - below;
      return (lower + (upper - lower) * (inBucket === 0 ? 1 : (rank - below) / inBucket)) * 1000;
    }
    return Number.NaN;
  };
  const within = (le: number) => (total === 0 ? Number.NaN : (cumulative[bounds.indexOf(le)] ?? 0) / total);
  return { total, p50: quantile(0.5), p99: quantile(0.99), within50: within(0.05), within100: within(0.1) };
}

function clientPercentile(report: ClientReport, q: number): number {
  let seen = 0;
  for (let ms = 0; ms < report.histogram.length; ms++) {
    seen += report.histogram[ms]!;
    if (seen >= report.received * q && seen > 0) return ms;
  }
  return Number.NaN;
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const field = (name: string) => Number(new RegExp(`^${name}:(\\S+)`, 'm').exec(info)?.[1] ?? 0);
  return field('used_cpu_user') + field('used_cpu_sys');
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
const ms = (value: number) => (Number.isFinite(value) ? `${Math.round(value)} ms` : 'n/a');
const pct = (share: number) => `${Math.round(share * 1000) / 10}%`;

const postgres = await startPostgres();
const redis = await startRedis();
const port = await freePort();
const base = `http://127.0.0.1:${port}`;
// SERVER_NODE_ARGS: flags for the control plane's node (e.g. `--cpu-prof`), to see where its time goes.
const serverNodeArgs = (process.env.SERVER_NODE_ARGS ?? '').split(' ').filter(Boolean);
const server = spawn(process.execPath, [...serverNodeArgs, CLI, 'server'], {
  env: {
    ...process.env,
    AETHERIUM_STORE__KIND: 'postgres',
    DATABASE_URL: await createDatabase(postgres.url),
    AETHERIUM_QUEUE__KIND: 'redis',
    AETHERIUM_EVENTS__KIND: 'redis',
    REDIS_URL: redis.url,
    AETHERIUM_API_GATEWAY__PORT: String(port),
    AETHERIUM_API_GATEWAY__HOST: '127.0.0.1',
    AETHERIUM_API_GATEWAY__RATE_LIMIT__ENABLED: 'false',
    AETHERIUM_LOG__LEVEL: 'error',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
let clients: ChildProcess | null = null;
process.once('exit', () => {
  server.kill('SIGKILL');
  clients?.kill('SIGKILL');
});
let failed = false;
const bus = new RedisEventBus({ url: redis.url });
const redisInfo = new Redis(redis.url, { maxRetriesPerRequest: 3 });
try {
  await waitForHttp(`${base}/health`, () => true, 60_000);
  // A fresh cluster: its first admin key, as an operator would get it.
  const bootstrap = await fetch(`${base}/api/v1/tokens/bootstrap`, { method: 'POST' });
  const { token } = (await bootstrap.json()) as { token: string };
  const child = fork(new URL('./event-clients.ts', import.meta.url), {
    env: {
      ...process.env,
      BENCH_URL: `ws://127.0.0.1:${port}/api/v1/events?topics=task`,
      BENCH_TOKEN: token,
      BENCH_CLIENTS: String(CLIENTS),
    },
    serialization: 'advanced', // the histogram crosses as a typed array
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  clients = child;
  await nextMessage(child, 'ready', 120_000);
  const idleRss = rssMb(server.pid!);
  await bus.ready();

  let published = 0;
  let peakRss = idleRss;
  /** Publishes at RATE for `seconds`, in 10 ms ticks so the rate is smooth; returns the count. */
  const publishFor = async (seconds: number) => {
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < seconds * 1000) {
      const due = Math.floor(((Date.now() - started) / 1000) * RATE) - sent;
      for (let i = 0; i < due; i++) void bus.publish(timedEvent(published++));
      sent += Math.max(0, due);
      if (sent % 500 === 0) peakRss = Math.max(peakRss, rssMb(server.pid!));
      await new Promise((r) => setTimeout(r, 10));
    }
    return sent;
  };

  console.log(
    `bench:events: ${CLIENTS} clients, ${RATE} events/s, ${RUNS} run(s) of ${SECONDS} s after ${WARMUP_SECONDS} s of warm-up`,
  );
  if (WARMUP_SECONDS > 0) {
    await publishFor(WARMUP_SECONDS);
    await new Promise((r) => setTimeout(r, DRAIN_MS));
  }

  const results: { clientP50: number; clientP99: number; serverP50: number; serverP99: number }[] = [];
  for (let run = 1; run <= RUNS; run++) {
    child.send({ type: 'start' });
    await nextMessage(child, 'started');
    const before = await scrape(base, token);
    const serverCpuBefore = cpuSeconds(server.pid!);
    const redisCpuBefore = await redisCpuSeconds(redisInfo);
    const selfCpuBefore = process.cpuUsage();
    const machineBefore = machineBusySeconds();
    const loadBefore = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    const started = Date.now();
    const sent = await publishFor(SECONDS);
    await new Promise((r) => setTimeout(r, DRAIN_MS));
    const elapsed = (Date.now() - started) / 1000;
    const serverCpu = cpuSeconds(server.pid!) - serverCpuBefore;
    const redisCpu = (await redisCpuSeconds(redisInfo)) - redisCpuBefore;
    const selfCpu = process.cpuUsage(selfCpuBefore);
    const machine = machineBusySeconds() - machineBefore;
    const after = await scrape(base, token);
    child.send({ type: 'report' });
    const report = await nextMessage<ClientReport>(child, 'report');
    peakRss = Math.max(peakRss, rssMb(server.pid!));

    const side = serverLatency(before, after);
    const clientP50 = clientPercentile(report, 0.5);
    const clientP99 = clientPercentile(report, 0.99);
    results.push({ clientP50, clientP99, serverP50: side.p50, serverP99: side.p99 });
    const core = (seconds: number, wall: number) => `${Math.round((seconds / wall) * 100)}% of one core`;
    console.log(
      `run ${run}: ${sent} published, ${report.received} deliveries (expected ${sent * CLIENTS}), ` +
        `${report.closedEarly} clients dropped so far`,
    );
    console.log(
      `  client-observed  p50 ${ms(clientP50)}, p99 ${ms(clientP99)}, max ${ms(clientPercentile(report, 1))}`,
    );
    console.log(
      `  server-side      p50 ~${ms(side.p50)}, p99 ~${ms(side.p99)} (publish → socket write, ${side.total} writes; ` +
        `${pct(side.within50)} within 50 ms, ${pct(side.within100)} within 100 ms)`,
    );
    console.log(
      `  control plane: ${core(serverCpu, elapsed)}, event-loop delay p99 ${ms(after.loopLagP99 * 1000)}; ` +
        `clients' process: ${core(report.cpuSeconds, report.wallSeconds)}, event loop busy ${pct(report.loopUtilisation)}, ` +
        `delay p50 ${ms(report.loopDelay.p50)} p99 ${ms(report.loopDelay.p99)} max ${ms(report.loopDelay.max)}; ` +
        `redis: ${core(redisCpu, elapsed)}; publisher: ${core((selfCpu.user + selfCpu.system) / 1e6, elapsed)}`,
    );
    // The bench shares the machine: what everything else took is part of the picture.
    const ours = serverCpu + report.cpuSeconds + redisCpu + (selfCpu.user + selfCpu.system) / 1e6;
    const share = (seconds: number) => `${Math.round((seconds / elapsed) * 100)}%`;
    console.log(
      `  machine: load average ${loadBefore} at the start; all processes used ${share(machine)} of one core ` +
        `(of ${availableParallelism() * 100}%), processes other than this bench's ${share(Math.max(0, machine - ours))}`,
    );
  }
  const pick = (key: keyof (typeof results)[number]) => median(results.map((r) => r[key]));
  console.log(
    `median of ${RUNS} run(s): client-observed p50 ${ms(pick('clientP50'))}, p99 ${ms(pick('clientP99'))}; ` +
      `server-side p50 ~${ms(pick('serverP50'))}, p99 ~${ms(pick('serverP99'))}`,
  );
  console.log(`control plane RSS: ${idleRss} MB idle with the clients connected, ${peakRss} MB peak`);
  child.send({ type: 'stop' });
  await withTimeout(
    new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null))),
    10_000,
    'clients exit',
  ).catch(() => child.kill('SIGKILL'));
} catch (err) {
  failed = true;
  console.error(err);
} finally {
  await bus.close();
  redisInfo.disconnect();
  server.kill('SIGTERM');
  await withTimeout(
    new Promise((r) => (server.exitCode === null ? server.once('exit', r) : r(null))),
    15_000,
    'server exit',
  ).catch(() => server.kill('SIGKILL'));
  await redis.stop();
  await postgres.stop();
}
process.exit(failed ? 1 : 0);
