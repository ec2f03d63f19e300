/**
 * `npm run bench:agent`: what the agent channel costs. One agent port on embedded engines, in this
 * process, and workers reaching it only through RemoteWorkerLink over mutual TLS on loopback.
 * Prints: the mTLS connect time, a join (key, CSR, token check, signing), heartbeat round trips
 * sequentially (p50 / p99) and with 50 workers at once (calls per second), against the same
 * calls on the in-process DirectWorkerLink.
 */
import { createKeyAndCsr } from '../src/adapters/pki/csr.ts';
import { LocalNodeCertificateAuthority } from '../src/adapters/pki/node-ca.ts';
import type { WorkerLink } from '../src/ports/worker-link.ts';
import { startAgentPort, workerRegistration as registration } from '../test/harness/agent-port.ts';

const CALLS = Number(process.env.CALLS ?? 2000);
const WORKERS = Number(process.env.WORKERS ?? 50);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;

async function sequential(link: WorkerLink, id: string): Promise<{ p50: number; p99: number }> {
  const times: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const started = performance.now();
    await link.heartbeat(id);
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return { p50: percentile(times, 0.5), p99: percentile(times, 0.99) };
}

async function concurrent(links: [WorkerLink, string][]): Promise<number> {
  const per = Math.ceil(CALLS / links.length);
  const started = performance.now();
  await Promise.all(
    links.map(async ([link, id]) => {
      for (let i = 0; i < per; i++) await link.heartbeat(id);
    }),
  );
  return (per * links.length) / ((performance.now() - started) / 1000);
}

const port = await startAgentPort();
const { ca, joins, direct } = port;

const connects: number[] = [];
const fleet: [WorkerLink, string][] = [];
for (let i = 0; i < WORKERS; i++) {
  const { link, connectMs } = await port.connect(`bench-${i}`);
  await link.register(registration(`bench-${i}`));
  connects.push(connectMs);
  fleet.push([link, `bench-${i}`]);
}
connects.sort((a, b) => a - b);

const { token } = await joins.create({ createdBy: 'bench', maxUses: 20 }, ca.fingerprint);
const joinTimes: number[] = [];
for (let i = 0; i < 20; i++) {
  const started = performance.now();
  const { csrPem } = await createKeyAndCsr(`joiner-${i}`);
  const redeemed = await joins.redeem(token, `joiner-${i}`);
  if (!redeemed.ok) throw new Error(`join ${i}: ${redeemed.reason}`);
  await new LocalNodeCertificateAuthority(ca).signWorker(csrPem, `joiner-${i}`, 3_600_000);
  joinTimes.push(performance.now() - started);
}
joinTimes.sort((a, b) => a - b);

await direct.register(registration('direct-0'));
const directSeq = await sequential(direct, 'direct-0');
const remoteSeq = await sequential(fleet[0]![0], fleet[0]![1]);
const directRate = await concurrent(
  Array.from({ length: WORKERS }, () => [direct, 'direct-0'] as [WorkerLink, string]),
);
const remoteRate = await concurrent(fleet);

const ms = (n: number) => `${n.toFixed(2)} ms`;
console.log(`agent channel, ${WORKERS} workers on one agent port (loopback, mutual TLS, embedded engines)`);
console.log(`  mTLS connect + resume: p50 ${ms(percentile(connects, 0.5))}, p99 ${ms(percentile(connects, 0.99))}`);
console.log(`  join (key + CSR + token + sign): p50 ${ms(percentile(joinTimes, 0.5))}, max ${ms(joinTimes.at(-1)!)}`);
console.log(`  heartbeat, sequential, ${CALLS} calls:`);
console.log(`    direct (in-process)  p50 ${ms(directSeq.p50)}, p99 ${ms(directSeq.p99)}`);
console.log(`    agent channel        p50 ${ms(remoteSeq.p50)}, p99 ${ms(remoteSeq.p99)}`);
console.log(
  `  heartbeat, ${WORKERS} at once: direct ${Math.round(directRate)}/s, agent channel ${Math.round(remoteRate)}/s`,
);

await port.stop();
