/** A worker thread of `bench/events`: N WebSocket clients, a latency histogram in milliseconds. */
import { parentPort, workerData } from 'node:worker_threads';
import WebSocket from 'ws';
import { sentAtInText } from '../test/harness/sample-events.ts';

const { url, clients, token } = workerData as { url: string; clients: number; token: string };
const histogram = new Float64Array(10_001); // 0..10,000 ms; the last bucket is "more"
let received = 0;
let closedEarly = 0;
const sockets: WebSocket[] = [];

for (let i = 0; i < clients; i++) {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
  ws.on('message', (raw) => {
    const now = Date.now();
    // One frame, one or more events (one per line).
    for (const text of String(raw).split('\n')) {
      const sentAt = sentAtInText(text);
      if (sentAt === null) continue;
      histogram[Math.max(0, Math.min(10_000, Math.round(now - sentAt)))]!++;
      received++;
    }
  });
  ws.on('close', () => closedEarly++);
  ws.on('error', () => undefined);
  sockets.push(ws);
}

await Promise.all(
  sockets.map((ws) => new Promise((resolve) => (ws.readyState === ws.OPEN ? resolve(null) : ws.once('open', resolve)))),
);
parentPort!.postMessage({ type: 'ready' });
parentPort!.on('message', (message) => {
  if (message === 'report') {
    parentPort!.postMessage({ type: 'report', histogram, received, closedEarly });
    for (const ws of sockets) ws.terminate();
  }
});
