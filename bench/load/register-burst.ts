/**
 * a. Workers registering at once, over the real agent channel: how long until the control plane
 * lists all of them in `GET /api/v1/workers`, timed from the moment they all start.
 * - "known workers": each already has its certificate (it joined before): mTLS connect + register;
 * - "first boot": each joins with a token first, with the worker's own join code (key pair, CSR,
 *   CA pin check, `POST /v1/join`), then connects and registers. The key pairs are made on this
 *   machine's two cores, where a real fleet makes each on its own host.
 * The list is polled from the start, 25 ms between answers; a worker is visible when it is listed
 * active.
 * Environment: LOAD_REGISTER_WORKERS (default 100).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { issueWorkerCert } from '../../src/adapters/pki/certificates.ts';
import type { AgentTls } from '../../src/adapters/agent/agent-connection.ts';
import { silentLogger } from '../../src/runtime/logger.ts';
import { resolveIdentity } from '../../src/runtime/worker-identity.ts';
import { type ControlPlane, startControlPlane } from './control-plane.ts';
import { envNumber, type Scenario } from './scenario.ts';
import { SimWorker } from './sim-worker.ts';
import { percentile, sleep } from './stats.ts';

const TARGET_MS = 1000;
const POLL_PAUSE_MS = 25;

interface Round {
  phase: string;
  /** First boot only: every join answered (certificate in hand). */
  all_joined_ms: number;
  /** Joined (first boot) and connected: the channel is open, nothing registered yet. */
  all_connected_ms: number;
  all_registered_ms: number;
  all_visible_ms: number;
  register_p50_ms: number;
  register_p99_ms: number;
  polls: number;
  failures: number;
}

/** Polls the worker list until every id is listed active; the time from `t0` of that answer. */
async function visibleAfter(cp: ControlPlane, ids: string[], t0: number, timeoutMs: number) {
  let polls = 0;
  const wanted = new Set(ids);
  while (performance.now() - t0 < timeoutMs) {
    const { body } = await cp.api<{ workers: { id: string; status: string }[] }>('GET', '/workers');
    const at = performance.now() - t0;
    polls++;
    let seen = 0;
    for (const w of body.workers) if (wanted.has(w.id) && w.status === 'active') seen++;
    if (seen === wanted.size) return { ms: at, polls };
    // A pause between polls, so that the probe does not take the CPU the registrations need.
    await sleep(POLL_PAUSE_MS);
  }
  return { ms: Number.NaN, polls };
}

async function burst(
  cp: ControlPlane,
  phase: string,
  ids: string[],
  start: (id: string, t0: number) => Promise<SimWorker>,
  joined: () => number = () => Number.NaN,
): Promise<Round> {
  const registerMs: number[] = [];
  let failures = 0;
  let lastRegistered = 0;
  let lastConnected = 0;
  const t0 = performance.now();
  const visible = visibleAfter(cp, ids, t0, 30_000);
  await Promise.all(
    ids.map(async (id) => {
      try {
        const sim = await start(id, t0);
        const started = performance.now();
        lastConnected = Math.max(lastConnected, started - t0);
        await sim.register();
        registerMs.push(performance.now() - started);
        lastRegistered = Math.max(lastRegistered, performance.now() - t0);
      } catch (err) {
        failures++;
        process.stderr.write(`  ${phase}: ${id} failed: ${(err as Error).message}\n`);
      }
    }),
  );
  const { ms, polls } = await visible;
  return {
    phase,
    all_joined_ms: failures ? Number.NaN : joined(),
    all_connected_ms: failures ? Number.NaN : lastConnected,
    all_registered_ms: failures ? Number.NaN : lastRegistered,
    all_visible_ms: ms,
    register_p50_ms: percentile(registerMs, 0.5),
    register_p99_ms: percentile(registerMs, 0.99),
    polls,
    failures,
  };
}

export const registerBurst: Scenario = {
  name: 'register',
  title: 'a. workers registering at once',
  budgetMs: 60_000,
  async run({ engines, scope, dir, log }) {
    const count = envNumber('LOAD_REGISTER_WORKERS', 100);
    const cp = await startControlPlane(await engines(), scope);
    const sims: SimWorker[] = [];
    scope.defer('simulated workers', () => Promise.all(sims.map((s) => s.close())).then(() => undefined));
    const connect = async (id: string, tls: AgentTls) => {
      const sim = new SimWorker(id, cp.agent, tls);
      sims.push(sim);
      await sim.connect();
      return sim;
    };

    log(`${count} known workers connect and register`);
    const knownIds = Array.from({ length: count }, (_, i) => `known-${String(i).padStart(3, '0')}`);
    // Their certificates are from an earlier join: made before the clock starts.
    const certs = new Map(
      await Promise.all(knownIds.map(async (id) => [id, await issueWorkerCert(cp.ca, id)] as const)),
    );
    const known = await burst(cp, 'known workers: connect + register', knownIds, (id) => {
      const issued = certs.get(id)!;
      return connect(id, { ca: cp.ca.certPem, cert: issued.certPem, key: issued.keyPem });
    });

    log(`${count} new workers join with a token, connect and register`);
    const token = await cp.joinToken(count);
    const newIds = Array.from({ length: count }, (_, i) => `joined-${String(i).padStart(3, '0')}`);
    let lastJoined = 0;
    const firstBoot = await burst(
      cp,
      'first boot: join + connect + register',
      newIds,
      async (id, t0) => {
        const identityDir = join(dir, id);
        mkdirSync(identityDir, { recursive: true });
        const identity = await resolveIdentity(
          {
            workerId: id,
            configuredId: true,
            servers: [cp.agent],
            tls: { ca_file: null, cert_file: null, key_file: null },
            joinToken: token,
            dir: identityDir,
          },
          silentLogger,
        );
        lastJoined = Math.max(lastJoined, performance.now() - t0);
        return connect(id, identity);
      },
      () => lastJoined,
    );

    const rounds = [known, firstBoot];
    return {
      tables: [
        {
          title: `${count} workers at once, one control plane (aetherium server, Postgres, Redis)`,
          table: {
            headers: [
              'phase',
              'all joined (ms)',
              'all connected (ms)',
              'all registered (ms)',
              'all visible in GET /workers (ms)',
              'register p50 (ms)',
              'register p99 (ms)',
              'list polls',
              'failed',
            ],
            rows: rounds.map((r) => [
              r.phase,
              r.all_joined_ms,
              r.all_connected_ms,
              r.all_registered_ms,
              r.all_visible_ms,
              r.register_p50_ms,
              r.register_p99_ms,
              r.polls,
              r.failures,
            ]),
          },
        },
      ],
      summary: [
        {
          scenario: 'a. register',
          metric: `${count} known workers → all visible`,
          value: Math.round(known.all_visible_ms),
          unit: 'ms',
          target: { op: '<=', value: TARGET_MS },
        },
        {
          scenario: 'a. register',
          metric: `${count} first boots (join) → all visible`,
          value: Math.round(firstBoot.all_visible_ms),
          unit: 'ms',
          target: { op: '<=', value: TARGET_MS },
        },
        {
          scenario: 'a. register',
          metric: 'workers that failed to join or register',
          value: known.failures + firstBoot.failures,
          unit: '',
          target: { op: '<=', value: 0 },
        },
      ],
      notes: [
        'Times from the moment all workers start; "visible" is the first GET /workers answer (polled every 25 ms) that lists all of them active.',
        'First boot includes each worker making its key pair and CSR, here all on this machine.',
      ],
      details: { workers: count, rounds },
    };
  },
};
