/**
 * The faults the suite injects, one at a time, while the load runs. Each one says how it is
 * done, how to tell that the cluster (or its clients) noticed, how it is undone and how to tell
 * the target is back. The runner (suite.ts) times each step; measures.ts turns the times and the
 * load's record into the table's columns.
 */
import type { Cluster } from '../harness/cluster.ts';
import { partitionHost } from '../harness/partition.ts';
import type { ResumingEventClient } from './events-client.ts';
import type { Load } from './load.ts';

export interface FaultContext {
  cluster: Cluster;
  events: ResumingEventClient;
  load: Load;
  /** GET through the first replica that answers; null when none does. */
  probe<T = unknown>(path: string): Promise<{ status: number; body: T } | null>;
  /** Any request, through the first replica that answers without a 5xx; null when none does. */
  send<T = unknown>(method: string, path: string, body?: object): Promise<{ status: number; body: T } | null>;
}

export interface Injected {
  /** What was hit: a worker id, a replica, an engine. */
  target: string;
  /** How, when it matters (e.g. which partition method this machine allowed). */
  note?: string;
  /** The VM the fault watches, for the faults about VMs. */
  vmId?: string;
  /** When the fault itself struck, when inject() first prepared something (a VM to watch). */
  at?: number;
  heal(): Promise<void>;
}

export interface Fault {
  name: string;
  /** One line for the docs and the report. */
  description: string;
  /** How long the outage lasts past its detection, before it is healed. */
  holdMs: number;
  inject(ctx: FaultContext, round: number): Promise<Injected>;
  /**
   * The moment the fault was noticed (by the cluster: a worker shown offline, an engine down in
   * /health; for a replica, by its clients), or null while it is not.
   */
  noticed(ctx: FaultContext, injected: Injected, since: number): Promise<number | null>;
  /** True once the target is back to normal. */
  healthy(ctx: FaultContext, injected: Injected): Promise<boolean>;
}

interface WorkerView {
  id: string;
  status: string;
  is_healthy: boolean;
}

async function workerView(ctx: FaultContext, id: string): Promise<WorkerView | null> {
  const answer = await ctx.probe<WorkerView>(`/api/v1/workers/${id}`);
  return answer?.status === 200 ? answer.body : null;
}

const workerGone = async (ctx: FaultContext, id: string) => {
  const worker = await workerView(ctx, id);
  return worker !== null && (worker.status === 'offline' || !worker.is_healthy) ? Date.now() : null;
};

const workerBack = async (ctx: FaultContext, id: string) => {
  const worker = await workerView(ctx, id);
  return worker?.status === 'active' && worker.is_healthy;
};

/** Every replica's /health, as seen from outside: null for one that does not answer. */
async function healthOfReplicas(ctx: FaultContext): Promise<({ status: string } | null)[]> {
  return Promise.all(
    ctx.cluster.servers.map(async (server) => {
      try {
        const response = await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(2000) });
        return (await response.json()) as { status: string };
      } catch {
        return null;
      }
    }),
  );
}

/**
 * An engine is noticed down when a replica's /health says so (or does not answer within 2 s, as
 * a load balancer's check would time out), or when a request of the load fails: whichever first.
 */
const engineDown = async (ctx: FaultContext, since: number) => {
  const failed = ctx.load.attempts
    .filter((a) => a.kind !== 'boot' && a.startedAt >= since && a.endedAt > 0 && !a.ok)
    .map((a) => a.endedAt);
  if (failed.length > 0) return Math.min(...failed);
  return (await healthOfReplicas(ctx)).some((h) => h === null || h.status !== 'ok') ? Date.now() : null;
};

const allHealthy = async (ctx: FaultContext) => (await healthOfReplicas(ctx)).every((h) => h?.status === 'ok');

const workerIds = (ctx: FaultContext) => [...ctx.cluster.workers.keys()];

export const workerKill: Fault = {
  name: 'worker-kill',
  description: 'SIGKILL a worker (its sandboxes live on), then start it again with the same state dir',
  holdMs: 0,
  async inject(ctx, round) {
    const id = workerIds(ctx)[round % ctx.cluster.workers.size]!;
    const worker = ctx.cluster.workers.get(id)!;
    await worker.kill('SIGKILL');
    return { target: id, heal: async () => worker.start() };
  },
  noticed: (ctx, injected) => workerGone(ctx, injected.target),
  healthy: (ctx, injected) => workerBack(ctx, injected.target),
};

export const replicaKill: Fault = {
  name: 'replica-kill',
  description: 'SIGKILL the control-plane replica the events client is connected to, then start it again',
  holdMs: 0,
  async inject(ctx) {
    const index = ctx.events.currentReplica ?? 0;
    const server = ctx.cluster.servers[index]!;
    await server.kill('SIGKILL');
    return { target: server.name, heal: async () => server.start() };
  },
  async noticed(ctx, injected, since) {
    // Its clients notice: the events stream drops, a request of the load cannot be made.
    const index = ctx.cluster.servers.findIndex((s) => s.name === injected.target);
    const times = [
      ...ctx.events.connections
        .filter((c) => c.replica === index && (c.closedAt ?? 0) >= since)
        .map((c) => c.closedAt!),
      ...ctx.load.attempts
        .filter((a) => a.replica === index && a.startedAt >= since && a.status === 0 && a.endedAt > 0)
        .map((a) => a.endedAt),
    ];
    return times.length > 0 ? Math.min(...times) : null;
  },
  async healthy(ctx, injected) {
    const server = ctx.cluster.servers.find((s) => s.name === injected.target)!;
    try {
      return (await fetch(`${server.url}/health`, { signal: AbortSignal.timeout(2000) })).status === 200;
    } catch {
      return false;
    }
  },
};

export const redisKill: Fault = {
  name: 'redis-kill',
  description: 'SIGKILL Redis (queues, events; AOF fsync every second), then start it on the same port and data dir',
  holdMs: 1000,
  async inject(ctx) {
    await ctx.cluster.redis.kill('SIGKILL');
    return { target: 'redis', heal: () => ctx.cluster.redis.start() };
  },
  noticed: (ctx, _injected, since) => engineDown(ctx, since),
  healthy: (ctx) => allHealthy(ctx),
};

export const postgresKill: Fault = {
  name: 'postgres-kill',
  description: 'SIGKILL Postgres (postmaster and backends), then start it again on the same data (crash recovery)',
  holdMs: 1000,
  async inject(ctx) {
    await ctx.cluster.postgres.crash();
    return { target: 'postgres', heal: () => ctx.cluster.postgres.start() };
  },
  noticed: (ctx, _injected, since) => engineDown(ctx, since),
  healthy: (ctx) => allHealthy(ctx),
};

interface VmView {
  status: string;
  error: string | null;
  deleted_at: string | null;
}

async function vmView(ctx: FaultContext, id: string): Promise<VmView | null> {
  const answer = await ctx.probe<VmView>(`/api/v1/vms/${id}`);
  return answer?.status === 200 ? answer.body : null;
}

/**
 * A VM of the fault's own, running on the given worker (every worker carries a `host` label with
 * its id), so that the fault has a VM to watch whatever the load is doing. Its id.
 */
async function pinnedVm(ctx: FaultContext, workerId: string, name: string): Promise<string> {
  const payload = { name, driver: 'sandbox', worker_labels: { host: workerId } };
  const made = await ctx.send<{ vm?: { id: string; status: string } }>(
    'POST',
    '/api/v1/vms?wait=true&timeout=60',
    payload,
  );
  const vm = made?.body.vm;
  if (made?.status !== 201 || !vm || vm.status !== 'running') {
    throw new Error(`the fault's own VM ${name} on ${workerId} did not start: ${JSON.stringify(made)}`);
  }
  return vm.id;
}

const dropVm = async (ctx: FaultContext, id: string) => {
  await ctx.send('DELETE', `/api/v1/vms/${id}?wait=true&timeout=60`);
};

export const workerPartition: Fault = {
  name: 'worker-partition',
  description:
    'cut a worker off the control plane inside its network namespace (its processes run on), then heal; a VM of its own must show unknown while it is away and running again after',
  holdMs: 2000,
  async inject(ctx, round) {
    const ids = workerIds(ctx);
    // Not the worker the kill of this round hit, when there is another.
    const index = (round + 1) % ids.length;
    const vmId = await pinnedVm(ctx, ids[index]!, `fl-pinned-${round + 1}`);
    const host = ctx.cluster.network.hosts[index]!;
    const at = Date.now();
    const partition = partitionHost(host);
    return {
      target: ids[index]!,
      note: partition.method,
      vmId,
      at,
      heal: async () => partition.heal(),
    };
  },
  // Noticed when the worker shows offline and its VM `unknown` (its worker unreachable), not `running`.
  async noticed(ctx, injected) {
    if ((await workerGone(ctx, injected.target)) === null) return null;
    const vm = await vmView(ctx, injected.vmId!);
    return vm?.status === 'unknown' && /unreachable/.test(vm.error ?? '') ? Date.now() : null;
  },
  // Back when the worker is active and its reconcile found the VM running again; then it goes.
  async healthy(ctx, injected) {
    if (!(await workerBack(ctx, injected.target))) return false;
    if ((await vmView(ctx, injected.vmId!))?.status !== 'running') return false;
    await dropVm(ctx, injected.vmId!);
    return true;
  },
};

export const vmInitKill: Fault = {
  name: 'vm-init-kill',
  description:
    "kill a VM's init from inside it (`kill -9 2` in a sandbox): the VM must be failed, with the reason, within seconds; then delete it",
  holdMs: 0,
  async inject(ctx, round) {
    const ids = workerIds(ctx);
    const target = ids[round % ids.length]!;
    const vmId = await pinnedVm(ctx, target, `fl-mortal-${round + 1}`);
    // The command dies with the VM: its answer does not matter, the VM's status does.
    const at = Date.now();
    await ctx.send('POST', `/api/v1/vms/${vmId}/exec`, { command: 'sh', args: ['-c', 'kill -9 2'] });
    return { target: `a VM on ${target}`, vmId, at, heal: () => dropVm(ctx, vmId) };
  },
  async noticed(ctx, injected) {
    const vm = await vmView(ctx, injected.vmId!);
    return vm?.status === 'failed' && /exited|signal|killed|memory/.test(vm.error ?? '') ? Date.now() : null;
  },
  async healthy(ctx, injected) {
    const vm = await vmView(ctx, injected.vmId!);
    return vm === null || vm.deleted_at !== null;
  },
};

/** The faults of one round, in order. */
export const FAULTS: Fault[] = [workerKill, replicaKill, redisKill, postgresKill, workerPartition, vmInitKill];

export interface PlannedFault {
  name: string;
  /** What the cluster must do once the behaviour exists: the check to add with the fault. */
  expect: string;
}

/**
 * Behaviours being built now; each becomes a Fault in FAULTS (and its expectation a check) when
 * it lands. The report lists them as planned so that the gap stays visible.
 */
export const PLANNED_FAULTS: PlannedFault[] = [
  {
    name: 'worker-lost',
    expect:
      'a worker away past worker.lost_after (default 5m, longer than a round): its VMs become lost and their capacity is returned; covered by test/vm.unreachable.test.ts on the embedded system',
  },
];
