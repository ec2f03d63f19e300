/**
 * The fleet `npm run bench:ui` shows the browser: 1000 workers over five zones (mostly active, some
 * draining, some offline) holding 10,000 VMs, written into a running embedded system through its
 * own ports, and the firehose of events about them.
 *
 * Workers register through the ServiceRegistry port with a TTL of a day, so they stay healthy for
 * the whole run without heartbeats; drains go through the WorkerService (the API's own path, which
 * publishes `worker.draining`); the offline ones deregister. VMs go through the Store like the
 * scheduler's commit: the VM and its `vm:create` task in one transaction, `placeTask` (which
 * reserves the VM's resources on its worker, so `vm_count` and `used_*` are the real sums), then the
 * task is completed. Everything is drawn from a fixed-seed PRNG: every run shows the same fleet.
 */
import { prng } from './cluster-fixture.ts';
import {
  type DriverName,
  EVENT_SCHEMAS,
  evt,
  type ExecuteTask,
  newId,
  type NewEvent,
  newTask,
  placementRecord,
  type Vm,
  type VmStatus,
  type WorkerRegistration,
  type WorkerStatus,
} from '../src/domain/index.ts';
import type { DevSystem } from '../src/runtime/dev.ts';
import { workerId } from '../src/runtime/worker-options.ts';
import type { Config } from '../src/config/schema.ts';

/** Uneven on purpose: a UI that groups by zone should show big and small ones. */
const ZONES = [
  { name: 'us-east-1a', weight: 0.32 },
  { name: 'us-east-1b', weight: 0.24 },
  { name: 'eu-west-1a', weight: 0.2 },
  { name: 'eu-central-1a', weight: 0.14 },
  { name: 'ap-south-1a', weight: 0.1 },
] as const;

const TIERS = ['general', 'compute', 'memory', 'gpu'];
const CAPABILITY_SETS: DriverName[][] = [
  ['firecracker', 'sandbox'],
  ['qemu', 'sandbox'],
  ['firecracker', 'qemu', 'sandbox'],
  ['sandbox'],
];
const SHAPES = [
  { cpu_cores: 32, memory_mb: 131_072, disk_gb: 1000, max_vms: 24 },
  { cpu_cores: 64, memory_mb: 262_144, disk_gb: 2000, max_vms: 32 },
  { cpu_cores: 96, memory_mb: 393_216, disk_gb: 4000, max_vms: 48 },
];
const VM_SHAPES = [
  { vcpus: 1, memory_mb: 512, disk_gb: 2 },
  { vcpus: 2, memory_mb: 1024, disk_gb: 4 },
  { vcpus: 2, memory_mb: 2048, disk_gb: 8 },
  { vcpus: 4, memory_mb: 4096, disk_gb: 16 },
];
const IMAGES = ['ubuntu-24.04', 'debian-12', 'alpine-3.20', 'python-3.12', 'node-22'];
const APPS = ['api', 'web', 'ci-runner', 'batch', 'notebook', 'sandbox'];
const ENVS = ['prod', 'staging', 'dev'];

/** A day: the bench lasts minutes, so the reaper never sees these workers go stale. */
const TTL_SECONDS = 86_400;

export interface SeedOptions {
  workers: number;
  vms: number;
  seed?: number;
}

export interface SeededWorker {
  id: string;
  hostname: string;
  zone: string;
  status: WorkerStatus;
  capabilities: DriverName[];
  resources: (typeof SHAPES)[number];
  /** What placing its VMs reserved: the sums the store holds too. */
  used: { vm_count: number; used_cpu_cores: number; used_memory_mb: number; used_disk_gb: number };
}

export interface SeededVm {
  id: string;
  name: string;
  worker_id: string;
  status: VmStatus;
  create_task_id: string;
}

export interface Fleet {
  workers: SeededWorker[];
  vms: SeededVm[];
  byStatus: Record<WorkerStatus, number>;
}

type Rand = () => number;
const pick = <T>(rand: Rand, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!;

function pickZone(rand: Rand): string {
  let r = rand();
  for (const zone of ZONES) {
    r -= zone.weight;
    if (r <= 0) return zone.name;
  }
  return ZONES[0].name;
}

/** ~86 % active, ~8 % draining, ~6 % offline: enough of each for the UI's filters and badges. */
function pickStatus(rand: Rand): WorkerStatus {
  const r = rand();
  return r < 0.86 ? 'active' : r < 0.94 ? 'draining' : 'offline';
}

function planWorkers(count: number, rand: Rand): SeededWorker[] {
  return Array.from({ length: count }, (_, i) => {
    const zone = pickZone(rand);
    const n = String(i).padStart(4, '0');
    return {
      id: `wrk-${n}`,
      hostname: `${zone}-node-${n}.fleet.internal`,
      zone,
      status: pickStatus(rand),
      capabilities: pick(rand, CAPABILITY_SETS),
      resources: pick(rand, SHAPES),
      used: { vm_count: 0, used_cpu_cores: 0, used_memory_mb: 0, used_disk_gb: 0 },
    };
  });
}

function registration(w: SeededWorker, rand: Rand, index: number): WorkerRegistration {
  const labels: Record<string, string> = {
    tier: pick(rand, TIERS),
    rack: `r${String(Math.floor(rand() * 40)).padStart(2, '0')}`,
    pool: rand() < 0.7 ? 'shared' : 'dedicated',
  };
  if (labels.tier === 'gpu') labels.gpu = pick(rand, ['a100', 'h100', 'l4']);
  return {
    id: w.id,
    hostname: w.hostname,
    address: `10.${ZONES.findIndex((z) => z.name === w.zone)}.${Math.floor(index / 250)}.${(index % 250) + 1}`,
    zone: w.zone,
    labels,
    capabilities: w.capabilities,
    ...w.resources,
    ttl_seconds: TTL_SECONDS,
    metadata: { seeded_by: 'bench:ui', agent_version: '0.1.0', kernel: '6.1.0-25-amd64' },
    started_at: new Date(Date.now() - Math.floor(rand() * 30 * 86_400_000)),
  };
}

/**
 * Which worker each VM lands on: weighted by size, never past a worker's slots, cpu, memory or disk
 * (placeTask would refuse it). VMs go on active and draining workers, and on offline ones too
 * (placed before they left), so that every page has VMs under every kind of worker.
 */
function planVms(count: number, workers: SeededWorker[], rand: Rand): { vm: Vm; worker: SeededWorker }[] {
  const planned: { vm: Vm; worker: SeededWorker }[] = [];
  const reserved = new Map(workers.map((w) => [w.id, { cpu: 0, mem: 0, disk: 0, vms: 0 }]));
  const totalSlots = workers.reduce((sum, w) => sum + w.resources.max_vms, 0);
  if (count > totalSlots) throw new Error(`${count} VMs do not fit in ${totalSlots} slots`);
  for (let i = 0; planned.length < count; i++) {
    const worker = workers[Math.floor(rand() * workers.length)]!;
    const shape = pick(rand, VM_SHAPES);
    const r = reserved.get(worker.id)!;
    const fits =
      r.vms < worker.resources.max_vms &&
      r.cpu + shape.vcpus <= worker.resources.cpu_cores &&
      r.mem + shape.memory_mb <= worker.resources.memory_mb &&
      r.disk + shape.disk_gb <= worker.resources.disk_gb;
    if (!fits) {
      if (i > count * 50) throw new Error('the fleet is too full to place the VMs');
      continue;
    }
    r.vms++;
    r.cpu += shape.vcpus;
    r.mem += shape.memory_mb;
    r.disk += shape.disk_gb;
    const created = new Date(Date.now() - Math.floor(rand() * 7 * 86_400_000));
    const vmStatus = worker.status === 'offline' ? 'failed' : pickVmStatus(rand);
    planned.push({
      worker,
      vm: {
        id: newId(),
        name: `${pick(rand, APPS)}-${String(planned.length).padStart(5, '0')}`,
        status: vmStatus,
        driver: null, // placeTask sets it
        worker_id: null,
        zone: rand() < 0.3 ? worker.zone : null,
        labels: { app: pick(rand, APPS), env: pick(rand, ENVS) },
        image: pick(rand, IMAGES),
        ...shape,
        error: vmStatus === 'failed' ? `worker ${worker.id} stopped answering` : null,
        created_at: created,
        updated_at: created,
        deleted_at: null,
        phases: {},
      },
    });
  }
  return planned;
}

function pickVmStatus(rand: Rand): VmStatus {
  const r = rand();
  return r < 0.8 ? 'running' : r < 0.9 ? 'stopped' : r < 0.95 ? 'starting' : 'failed';
}

/**
 * The VM, its create task placed on `worker` (the reservation), then the task completed: what the
 * scheduler and the worker would have written, without a worker process behind it.
 */
async function writeVm(system: DevSystem, { vm, worker }: { vm: Vm; worker: SeededWorker }): Promise<SeededVm> {
  const store = system.engines.store;
  const task = newTask('vm:create', { worker_labels: {}, strategy: null }, { vm_id: vm.id });
  await store.insertVmWithTask(vm, task);
  const driver = worker.capabilities[0]!;
  const chosen = { worker_id: worker.id, driver, score: 0.5 };
  const explanation = {
    workers: 1,
    evaluated: 1,
    sampled: false,
    feasible: 1,
    rejected: {},
    strategy: 'binpack' as const,
    chosen,
  };
  const outcome = await store.placeTask(
    task.id,
    vm.id,
    worker.id,
    driver,
    placementRecord(explanation, null, vm.created_at),
  );
  if (outcome !== 'placed') throw new Error(`placing VM ${vm.name} on ${worker.id}: ${outcome}`);
  const done = await store.updateTask(
    task.id,
    {
      status: 'completed',
      result: { vm_id: vm.id, driver, boot_ms: 120 },
      started_at: vm.created_at,
      completed_at: vm.created_at,
    },
    ['scheduled'],
  );
  if (!done) throw new Error(`completing the create task of VM ${vm.name} failed`);
  worker.used.vm_count++;
  worker.used.used_cpu_cores += vm.vcpus;
  worker.used.used_memory_mb += vm.memory_mb;
  worker.used.used_disk_gb += vm.disk_gb;
  return { id: vm.id, name: vm.name, worker_id: worker.id, status: vm.status, create_task_id: task.id };
}

/**
 * The in-process worker of `aetherium dev` would make the fleet 1001 and take placements of its own;
 * it is stopped and its row removed, so the UI shows exactly the seeded fleet.
 */
async function removeLocalWorker(system: DevSystem, config: Config): Promise<void> {
  await system.agent.stop();
  await system.engines.store.deleteWorker(workerId(config));
}

export async function seedFleet(system: DevSystem, config: Config, options: SeedOptions): Promise<Fleet> {
  const rand = prng(options.seed ?? 7);
  const { registry } = system.engines;
  const scheduler = system.controlPlane.scheduler;
  // No scheduler pass while seeding: our create tasks are pending for an instant, and a pass that
  // placed one first would queue it for a worker that is not there.
  await scheduler.stop();
  try {
    await removeLocalWorker(system, config);
    const workers = planWorkers(options.workers, rand);
    // Every worker is active while its VMs are placed (placeTask takes only active, eligible ones).
    // One write at a time: PGlite runs one statement at a time anyway (8 in flight was no faster).
    for (const [i, w] of workers.entries()) await registry.register(registration(w, rand, i));
    const planned = planVms(options.vms, workers, rand);
    const vms: SeededVm[] = [];
    for (const p of planned) vms.push(await writeVm(system, p));
    for (const w of workers) {
      if (w.status === 'draining') {
        await system.controlPlane.workers.drainWorker(w.id, { no_deadline: true, message: 'kernel upgrade' });
      } else if (w.status === 'offline') {
        await registry.deregister(w.id);
      }
    }
    const byStatus = { active: 0, draining: 0, offline: 0 };
    for (const w of workers) byStatus[w.status]++;
    return { workers, vms, byStatus };
  } finally {
    await scheduler.start();
  }
}

async function getJson<T>(address: string, token: string, path: string): Promise<T> {
  const response = await fetch(`${address}/api/v1${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (!response.ok) throw new Error(`GET ${path}: ${response.status} ${await response.text()}`);
  return (await response.json()) as T;
}

/** Reads the fleet back through the HTTP API, as the UI will; throws listing every count that differs. */
export async function verifySeed(address: string, token: string, fleet: Fleet): Promise<string[]> {
  const wanted = { workers: fleet.workers.length, vms: fleet.vms.length };
  const workers = await getJson<{ total: number }>(address, token, '/workers');
  const stats = await getJson<{
    total_workers: number;
    active_workers: number;
    draining_workers: number;
    offline_workers: number;
    total_vms: number;
  }>(address, token, '/cluster/stats');
  const distribution = await getJson<{ total_workers: number; total_vms: number }>(
    address,
    token,
    '/cluster/distribution',
  );
  const vms = await getJson<{ total: number }>(address, token, '/vms?limit=1000');
  const checks: [string, number, number][] = [
    ['GET /workers total', workers.total, wanted.workers],
    ['GET /cluster/stats total_workers', stats.total_workers, wanted.workers],
    ['GET /cluster/stats active_workers', stats.active_workers, fleet.byStatus.active],
    ['GET /cluster/stats draining_workers', stats.draining_workers, fleet.byStatus.draining],
    ['GET /cluster/stats offline_workers', stats.offline_workers, fleet.byStatus.offline],
    ['GET /cluster/stats total_vms', stats.total_vms, wanted.vms],
    ['GET /cluster/distribution total_workers', distribution.total_workers, wanted.workers],
    ['GET /cluster/distribution total_vms', distribution.total_vms, wanted.vms],
    ['GET /vms?limit=1000 total', vms.total, Math.min(1000, wanted.vms)],
  ];
  const wrong = checks.filter(([, got, want]) => got !== want);
  if (wrong.length > 0) {
    throw new Error(
      `the seed does not read back:\n${wrong.map(([what, got, want]) => `  ${what}: ${got}, want ${want}`).join('\n')}`,
    );
  }
  return checks.map(([what, got]) => `${what} = ${got}`);
}

// ── the firehose ──────────────────────────────────────────────────────────────────────────────

/**
 * `count` events about the seeded fleet, in an order that could happen: resource reports of active
 * workers, VMs flipping between running and stopped (each `from` is the VM's status before), and
 * commands run in VMs (`task.created`, `.started`, `.completed` in turn). Built by the domain's
 * constructors and checked against EVENT_SCHEMAS, so a malformed one fails here, not in the page.
 */
export function fleetEvents(fleet: Fleet, count: number, seed = 11): NewEvent[] {
  const rand = prng(seed);
  const active = fleet.workers.filter((w) => w.status === 'active');
  const flippable = fleet.vms.filter((v) => v.status === 'running' || v.status === 'stopped');
  const statusOf = new Map(flippable.map((v) => [v.id, v.status]));
  const events: NewEvent[] = [];
  let commands: ExecuteTask[] = [];
  while (events.length < count) {
    const r = rand();
    if (r < 0.4) events.push(resourceReport(pick(rand, active), rand));
    else if (r < 0.7) {
      const vm = pick(rand, flippable);
      const from = statusOf.get(vm.id)!;
      const to: VmStatus = from === 'running' ? 'stopped' : 'running';
      statusOf.set(vm.id, to);
      events.push(evt.vmStateChanged({ id: vm.id, name: vm.name, worker_id: vm.worker_id }, from, to, null));
    } else {
      const step = commandStep(commands, pick(rand, flippable));
      commands = step.inFlight;
      events.push(step.event);
    }
  }
  for (const event of events) {
    const parsed = EVENT_SCHEMAS[event.type].safeParse(event.data);
    if (!parsed.success) throw new Error(`generated ${event.type} does not match its schema: ${parsed.error.message}`);
  }
  return events;
}

/** A worker's capacity report: what is reserved on it, a VM more or less than the seed. */
function resourceReport(w: SeededWorker, rand: Rand): NewEvent {
  const delta = rand() < 0.5 ? -1 : 1;
  const vmCount = Math.max(0, Math.min(w.resources.max_vms, w.used.vm_count + delta));
  const perVm = w.used.vm_count > 0 ? w.used.used_cpu_cores / w.used.vm_count : 1;
  return evt.workerResources({
    id: w.id,
    vm_count: vmCount,
    used_cpu_cores: Math.round(vmCount * perVm),
    used_memory_mb: w.used.vm_count > 0 ? Math.round((w.used.used_memory_mb / w.used.vm_count) * vmCount) : 0,
    used_disk_gb: w.used.vm_count > 0 ? Math.round((w.used.used_disk_gb / w.used.vm_count) * vmCount) : 0,
  });
}

/**
 * The next event of the commands in flight: a new command in `vm` when few run, else the oldest one
 * moves on (created → started → completed) and leaves the list when it completes.
 */
function commandStep(inFlight: ExecuteTask[], vm: SeededVm): { event: NewEvent; inFlight: ExecuteTask[] } {
  const oldest = inFlight[0];
  if (!oldest || inFlight.length < 20) {
    const task = newTask(
      'vm:execute',
      { command: 'uptime', args: [], env: {} },
      { vm_id: vm.id, worker_id: vm.worker_id, status: 'pending' },
    );
    return { event: evt.taskCreated(task, null), inFlight: [...inFlight, task] };
  }
  if (oldest.status === 'pending') {
    const started: ExecuteTask = { ...oldest, status: 'running', started_at: new Date() };
    return { event: evt.taskStarted(started), inFlight: [started, ...inFlight.slice(1)] };
  }
  const completed: ExecuteTask = {
    ...oldest,
    status: 'completed',
    result: {
      execution_id: newId(),
      exit_code: 0,
      stdout: ' 12:00:01 up 3 days,  2:14,  0 users,  load average: 0.08, 0.03, 0.01\n',
      stderr: '',
      timed_out: false,
      duration_ms: 12,
    },
  };
  return { event: evt.taskCompleted(completed), inFlight: inFlight.slice(1) };
}
