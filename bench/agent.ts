/**
 * `npm run bench:agent`: what the agent channel costs. One agent port on embedded engines, in this
 * process, and workers reaching it only through RemoteWorkerLink over mutual TLS on loopback.
 * Prints: the mTLS connect time, a join (key, CSR, token check, signing), heartbeat round trips
 * sequentially (p50 / p99) and with 50 workers at once (calls per second), against the same
 * calls on the in-process DirectWorkerLink.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentConnection } from '../src/adapters/agent/agent-connection.ts';
import { RemoteWorkerLink } from '../src/adapters/agent/remote-worker-link.ts';
import { createCa, parseCa } from '../src/adapters/pki/ca.ts';
import { issueServerCert, issueWorkerCert } from '../src/adapters/pki/certificates.ts';
import { createKeyAndCsr } from '../src/adapters/pki/csr.ts';
import { LocalNodeCertificateAuthority } from '../src/adapters/pki/node-ca.ts';
import { loadConfig } from '../src/config/load.ts';
import type { WorkerRegistration } from '../src/domain/index.ts';
import type { WorkerLink } from '../src/ports/worker-link.ts';
import { openEngines } from '../src/runtime/engines.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { linkOverEngines } from '../src/runtime/worker-link.ts';
import { AgentServer } from '../src/server/agent/agent-server.ts';
import { JoinTokenService } from '../src/server/services/join-token-service.ts';
import { freePort } from '../test/harness/processes.ts';

const CALLS = Number(process.env.CALLS ?? 2000);
const WORKERS = Number(process.env.WORKERS ?? 50);

const registration = (id: string): WorkerRegistration => ({
  id,
  hostname: id,
  address: '127.0.0.1',
  zone: 'z',
  labels: {},
  capabilities: ['process'],
  cpu_cores: 8,
  memory_mb: 8192,
  disk_gb: 50,
  max_vms: 10,
  ttl_seconds: 30,
  metadata: {},
});

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

const dir = mkdtempSync(join(tmpdir(), 'aetherium-bench-agent-'));
const config = loadConfig({
  env: {},
  overrides: { store: { kind: 'pglite', pglite: { data_dir: join(dir, 'pglite') } }, log: { level: 'silent' } },
});
const engines = await openEngines(config, silentLogger);
const pems = await createCa();
const ca = await parseCa(pems.certPem, pems.keyPem);
const serverCert = await issueServerCert(ca);
const port = await freePort();
const joins = new JoinTokenService(engines.store);
const direct = linkOverEngines(engines, silentLogger);
const server = new AgentServer(
  {
    host: '127.0.0.1',
    port,
    tls: { cert: serverCert.certPem, key: serverCert.keyPem, ca: pems.certPem },
    pingIntervalMs: 5000,
  },
  {
    link: direct,
    store: engines.store,
    queue: engines.queue,
    channels: engines.channels,
    ca: new LocalNodeCertificateAuthority(ca),
    certTtlMs: 3_600_000,
    joins,
    log: silentLogger,
  },
);
await server.start();

const connections: AgentConnection[] = [];
async function remote(id: string): Promise<{ link: RemoteWorkerLink; connectMs: number }> {
  const issued = await issueWorkerCert(ca, id);
  const connection = new AgentConnection({
    servers: [`127.0.0.1:${port}`],
    tls: () => ({ ca: pems.certPem, cert: issued.certPem, key: issued.keyPem }),
    log: silentLogger,
  });
  connections.push(connection);
  const link = new RemoteWorkerLink(connection);
  const started = performance.now();
  connection.start();
  await connection.connected(10_000);
  const connectMs = performance.now() - started;
  await link.register(registration(id));
  return { link, connectMs };
}

const connects: number[] = [];
const fleet: [WorkerLink, string][] = [];
for (let i = 0; i < WORKERS; i++) {
  const { link, connectMs } = await remote(`bench-${i}`);
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

for (const connection of connections) await connection.close();
await server.stop();
await engines.close();
rmSync(dir, { recursive: true, force: true });
