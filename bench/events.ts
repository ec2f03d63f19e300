/**
 * `npm run bench:events`: 1,000 WebSocket clients on one control plane (`aetherium server`, a
 * separate process) while events are published at 500 per second through Redis, as another
 * replica would. Prints p50 / p99 delivery latency and the control plane's CPU and memory.
 * Clients run in two worker threads of this process, on the same 2-core machine.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { RedisEventBus } from '../src/adapters/events/redis-event-bus.ts';
import { CLI, freePort, waitForHttp } from '../test/harness/processes.ts';
import { createDatabase, startPostgres } from '../test/harness/postgres.ts';
import { startRedis } from '../test/harness/redis.ts';
import { timedEvent } from '../test/harness/sample-events.ts';

const CLIENTS = Number(process.env.CLIENTS ?? 1000);
const RATE = Number(process.env.RATE ?? 500);
const SECONDS = Number(process.env.SECONDS ?? 10);
const THREADS = 2;

function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in clock ticks of 10 ms
}

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8')
    .split('\n')
    .find((l) => l.startsWith('VmRSS:'))!;
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
}

const postgres = await startPostgres();
const redis = await startRedis();
const port = await freePort();
const server = spawn(process.execPath, [CLI, 'server'], {
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
    AETHERIUM_LOG__LEVEL: 'warn',
  },
  stdio: ['ignore', 'inherit', 'inherit'],
});
process.once('exit', () => server.kill('SIGKILL'));
try {
  await waitForHttp(`http://127.0.0.1:${port}/health`, () => true, 60_000);
  // A fresh cluster: its first admin key, as an operator would get it.
  const bootstrap = await fetch(`http://127.0.0.1:${port}/api/v1/tokens/bootstrap`, { method: 'POST' });
  const { token } = (await bootstrap.json()) as { token: string };
  const url = `ws://127.0.0.1:${port}/api/v1/events?topics=task`;
  const threads = Array.from(
    { length: THREADS },
    (_, i) =>
      new Worker(new URL('./event-clients.mjs', import.meta.url), {
        workerData: {
          url,
          token,
          clients:
            Math.ceil(CLIENTS / THREADS) - (i === THREADS - 1 ? Math.ceil(CLIENTS / THREADS) * THREADS - CLIENTS : 0),
        },
      }),
  );
  await Promise.all(threads.map((t) => new Promise((resolve) => t.once('message', resolve))));
  const idleRss = rssMb(server.pid!);

  const bus = new RedisEventBus({ url: redis.url });
  await bus.ready();
  const cpuBefore = cpuSeconds(server.pid!);
  const started = Date.now();
  let published = 0;
  let peakRss = idleRss;
  // Publish in 10 ms ticks so the rate is smooth.
  while (Date.now() - started < SECONDS * 1000) {
    const due = Math.floor(((Date.now() - started) / 1000) * RATE) - published;
    for (let i = 0; i < due; i++) void bus.publish(timedEvent(published + i));
    published += Math.max(0, due);
    if (published % 500 === 0) peakRss = Math.max(peakRss, rssMb(server.pid!));
    await new Promise((r) => setTimeout(r, 10));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const elapsed = (Date.now() - started) / 1000;
  const cpu = cpuSeconds(server.pid!) - cpuBefore;
  peakRss = Math.max(peakRss, rssMb(server.pid!));

  const histogram = new Float64Array(10_001);
  let received = 0;
  let closedEarly = 0;
  for (const t of threads) {
    const report = await new Promise<{ histogram: Float64Array; received: number; closedEarly: number }>((resolve) => {
      t.once('message', resolve);
      t.postMessage('report');
    });
    for (const [ms, n] of report.histogram.entries()) histogram[ms]! += n;
    received += report.received;
    closedEarly += report.closedEarly;
    await t.terminate();
  }
  const percentile = (q: number) => {
    let seen = 0;
    for (let ms = 0; ms < histogram.length; ms++) {
      seen += histogram[ms]!;
      if (seen >= received * q) return ms;
    }
    return Infinity;
  };
  await bus.close();
  console.log(
    `clients ${CLIENTS}, ${RATE} events/s for ${SECONDS} s: ${published} published, ` +
      `${received} deliveries (expected ${published * CLIENTS}), ${closedEarly} clients dropped`,
  );
  console.log(`delivery latency p50 ${percentile(0.5)} ms, p99 ${percentile(0.99)} ms, max ${percentile(1)} ms`);
  console.log(
    `control plane: ${Math.round((cpu / elapsed) * 100)}% of one core, ` +
      `RSS ${idleRss} MB idle with the clients connected, ${peakRss} MB peak`,
  );
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  await redis.stop();
  await postgres.stop();
}
