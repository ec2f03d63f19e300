/**
 * The client side of `bench/events`, in a process of its own (forked by it, IPC channel): N
 * WebSocket clients and a histogram of their receive latency in milliseconds. It measures its own
 * cost as well — CPU, event-loop utilisation and event-loop delay — so the bench can tell the time
 * the clients add to what they observe from the time the server takes.
 *
 * Messages from the parent: `{ type: 'start' }` (a run begins: reset the measures; answered with
 * `{ type: 'started' }`), `{ type: 'report' }`
 * (answered with a `ClientReport`), `{ type: 'stop' }` (close every socket and exit).
 */
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import WebSocket from 'ws';

export interface ClientReport {
  type: 'report';
  /** Deliveries by latency, one bucket per millisecond: 0..10,000 ms (the last bucket is "more"). */
  histogram: Float64Array;
  received: number;
  /** Clients whose socket closed since they connected (the server dropped them). */
  closedEarly: number;
  /** CPU time of this process during the run (user + system), in seconds. */
  cpuSeconds: number;
  /** Wall time of the run, in seconds. */
  wallSeconds: number;
  /** Share of the run the event loop was busy (0..1). */
  loopUtilisation: number;
  /** Event-loop delay during the run, in milliseconds. */
  loopDelay: { p50: number; p99: number; max: number };
}

const url = process.env.BENCH_URL!;
const token = process.env.BENCH_TOKEN!;
const clients = Number(process.env.BENCH_CLIENTS ?? 1000);
const send = (message: unknown) => process.send!(message);

let histogram = new Float64Array(10_001);
let received = 0;
let closedEarly = 0;
const sockets: WebSocket[] = [];

// The receive time is read once per frame; the send time of each event is found in the raw bytes
// (`sent_at=<ms>`), without decoding or parsing the frame: the clients should cost as little as
// they can, as they share the machine with the server they measure.
const MARK = Buffer.from('sent_at=');
function record(frame: Buffer, now: number): void {
  let at = frame.indexOf(MARK);
  while (at >= 0) {
    let i = at + MARK.length;
    let sentAt = 0;
    for (; i < frame.length; i++) {
      const c = frame[i]!;
      if (c < 48 || c > 57) break;
      sentAt = sentAt * 10 + (c - 48);
    }
    if (i > at + MARK.length) {
      histogram[Math.max(0, Math.min(10_000, Math.round(now - sentAt)))]!++;
      received++;
    }
    at = frame.indexOf(MARK, i);
  }
}

for (let i = 0; i < clients; i++) {
  // The server's frames are valid UTF-8 JSON: the clients do not spend CPU checking that.
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, skipUTF8Validation: true });
  ws.on('message', (raw: Buffer) => record(raw, Date.now()));
  ws.on('close', () => closedEarly++);
  ws.on('error', () => undefined);
  sockets.push(ws);
}
await Promise.all(
  sockets.map((ws) => new Promise((resolve) => (ws.readyState === ws.OPEN ? resolve(null) : ws.once('open', resolve)))),
);

const delay = monitorEventLoopDelay({ resolution: 5 });
let cpuAtStart = process.cpuUsage();
let wallAtStart = performance.now();
let loopAtStart = performance.eventLoopUtilization();

process.on('message', (message: { type: string }) => {
  if (message.type === 'start') {
    histogram = new Float64Array(10_001);
    received = 0;
    delay.disable();
    delay.reset();
    delay.enable();
    cpuAtStart = process.cpuUsage();
    wallAtStart = performance.now();
    loopAtStart = performance.eventLoopUtilization();
    send({ type: 'started' });
  } else if (message.type === 'report') {
    const cpu = process.cpuUsage(cpuAtStart);
    const report: ClientReport = {
      type: 'report',
      histogram,
      received,
      closedEarly,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      wallSeconds: (performance.now() - wallAtStart) / 1000,
      loopUtilisation: performance.eventLoopUtilization(loopAtStart).utilization,
      loopDelay: {
        p50: delay.percentile(50) / 1e6,
        p99: delay.percentile(99) / 1e6,
        max: delay.max / 1e6,
      },
    };
    send(report);
  } else if (message.type === 'stop') {
    for (const ws of sockets) ws.terminate();
    process.disconnect();
    process.exit(0);
  }
});
send({ type: 'ready' });
