/**
 * The invariants a fault run must keep, as pure functions over what the suite collected (the
 * database's rows, the API's answers, the hosts' launch record and live inits, the events client's
 * record, Redis' stream). Each returns a name, pass or fail, and a detail that says why.
 */
import type { Connection } from './events-client.ts';
import type { LoadVm } from './load.ts';
import { FINAL_TASK, type TaskRow } from './measures.ts';
import type { Launch, LiveInit, Overlap } from './vm-launches.ts';

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
}

export interface VmRow {
  id: string;
  name: string;
  status: string;
  worker_id: string | null;
  reserved: boolean;
  deleted_at: number | null;
  vcpus: number;
  memory_mb: number;
  disk_gb: number;
}

export interface WorkerUsage {
  id: string;
  used_cpu_cores: number;
  used_memory_mb: number;
  used_disk_gb: number;
  vm_count: number;
}

const list = (items: string[], max = 5) =>
  items.length <= max ? items.join(', ') : `${items.slice(0, max).join(', ')} … (${items.length} in all)`;

/**
 * No task lost: every task id and VM id an answer gave the load is in the database, every VM of
 * the load has its create task, and every VM whose delete completed is deleted.
 */
export function noTaskLost(load: LoadVm[], tasks: TaskRow[], vms: VmRow[]): CheckResult {
  const taskIds = new Set(tasks.map((t) => t.id));
  const vmById = new Map(vms.map((v) => [v.id, v]));
  const acked = load.flatMap((vm) => [...vm.tasks.create, ...vm.tasks.exec, ...vm.tasks.delete]);
  const missingTasks = acked.filter((id) => !taskIds.has(id));
  const missingVms = load.filter((vm) => vm.id !== null && !vmById.has(vm.id)).map((vm) => vm.name);
  const creates = new Set(tasks.filter((t) => t.type === 'vm:create').map((t) => t.vm_id));
  const withoutCreate = vms.filter((v) => !creates.has(v.id)).map((v) => v.name);
  const deletedTasks = tasks.filter((t) => t.type === 'vm:delete' && t.status === 'completed');
  const notDeleted = deletedTasks
    .map((t) => vmById.get(t.vm_id ?? ''))
    .filter((v): v is VmRow => v !== undefined && v.deleted_at === null)
    .map((v) => v.name);
  const problems = [
    missingTasks.length ? `tasks answered but not stored: ${list(missingTasks)}` : '',
    missingVms.length ? `VMs answered but not stored: ${list(missingVms)}` : '',
    withoutCreate.length ? `VMs without a create task: ${list(withoutCreate)}` : '',
    notDeleted.length ? `delete completed, VM still there: ${list(notDeleted)}` : '',
  ].filter(Boolean);
  return {
    name: 'no task lost',
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `${acked.length} tasks answered, all stored; ${tasks.length} tasks of ${vms.length} VMs, each VM with its create`,
  };
}

/**
 * No task stuck: at the end every task of the load is final, and none that existed when the
 * faults ended took longer than `boundMs` past that moment to get there.
 */
export function noTaskStuck(tasks: TaskRow[], faultsEndedAt: number, boundMs: number, now: number): CheckResult {
  const deadline = faultsEndedAt + boundMs;
  const open = tasks.filter((t) => !FINAL_TASK.has(t.status));
  const late = tasks.filter(
    (t) => FINAL_TASK.has(t.status) && t.created_at < faultsEndedAt && (t.completed_at ?? t.updated_at) > deadline,
  );
  const describe = (t: TaskRow) =>
    `${t.type} ${t.id.slice(0, 8)} ${t.status} on ${t.worker_id ?? '-'} (${Math.round((now - t.updated_at) / 1000)} s unchanged)`;
  const problems = [
    open.length ? `not final: ${list(open.map(describe))}` : '',
    late.length ? `final only after the bound: ${list(late.map(describe))}` : '',
  ].filter(Boolean);
  const last = tasks.reduce((max, t) => Math.max(max, t.completed_at ?? t.updated_at), faultsEndedAt);
  return {
    name: 'no task stuck',
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `${tasks.length} tasks final; the last settled ${Math.max(0, Math.round((last - faultsEndedAt) / 100) / 10)} s after the faults ended (bound ${boundMs / 1000} s)`,
  };
}

/**
 * No VM started twice: no init launched while another init of the same VM was alive (the
 * launch record's `alongside`, the sampler's overlaps), and one VM per create (per
 * Idempotency-Key, i.e. per load name). A VM launched again after its first init died (a boot
 * interrupted by a worker kill, retried) is counted in the detail, not a failure.
 */
export function noVmStartedTwice(launches: Launch[], overlaps: Overlap[], vms: VmRow[]): CheckResult {
  const concurrent = launches.filter((l) => l.alongside.length > 0);
  const perVm = new Map<string, number>();
  for (const l of launches) perVm.set(l.vmId, (perVm.get(l.vmId) ?? 0) + 1);
  const relaunched = [...perVm.values()].filter((n) => n > 1).length;
  const perName = new Map<string, number>();
  for (const v of vms) perName.set(v.name, (perName.get(v.name) ?? 0) + 1);
  const duplicates = [...perName].filter(([, n]) => n > 1).map(([name, n]) => `${name} ×${n}`);
  const problems = [
    concurrent.length
      ? `launched while another init of it ran: ${list(concurrent.map((l) => `${l.vmId.slice(0, 8)} on ${l.host} (alongside pids ${l.alongside.join(',')})`))}`
      : '',
    overlaps.length
      ? `two live inits at once: ${list(overlaps.map((o) => `${o.vmId.slice(0, 8)} ${o.inits.map((i) => `${i.host}:${i.pid}`).join('+')}`))}`
      : '',
    duplicates.length ? `more than one VM for one create: ${list(duplicates)}` : '',
  ].filter(Boolean);
  return {
    name: 'no VM started twice',
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `${perVm.size} VMs, ${launches.length} init launches (${relaunched} relaunched after a dead first init), never two at once`,
  };
}

/**
 * No VM on two hosts: each VM was launched on one host only, the one the database names, was
 * never seen alive on another, and at the end what runs on the hosts is what the database says
 * runs there (no orphan init, no running VM without one).
 */
export function noVmOnTwoHosts(
  launches: Launch[],
  seenOn: Map<string, Set<string>>,
  finalInits: LiveInit[],
  vms: VmRow[],
): CheckResult {
  const vmById = new Map(vms.map((v) => [v.id, v]));
  const hostsOf = new Map<string, Set<string>>();
  for (const l of launches) hostsOf.set(l.vmId, (hostsOf.get(l.vmId) ?? new Set()).add(l.host ?? '?'));
  const launchedTwice = [...hostsOf].filter(([, h]) => h.size > 1).map(([id, h]) => `${id.slice(0, 8)} on ${[...h]}`);
  const seenTwice = [...seenOn].filter(([, h]) => h.size > 1).map(([id, h]) => `${id.slice(0, 8)} on ${[...h]}`);
  const elsewhere = launches
    .filter((l) => {
      const vm = vmById.get(l.vmId);
      return vm !== undefined && vm.worker_id !== null && vm.worker_id !== l.host;
    })
    .map((l) => `${l.vmId.slice(0, 8)} launched on ${l.host}, placed on ${vmById.get(l.vmId)!.worker_id}`);
  const orphans = finalInits
    .filter((i) => {
      const vm = vmById.get(i.vmId);
      return vm === undefined || vm.deleted_at !== null || vm.worker_id !== i.host || vm.status !== 'running';
    })
    .map((i) => {
      const vm = vmById.get(i.vmId);
      return `${i.vmId.slice(0, 8)} alive on ${i.host} (database: ${vm ? `${vm.status}${vm.deleted_at ? ', deleted' : ''} on ${vm.worker_id}` : 'no such VM'})`;
    });
  const alive = new Set(finalInits.map((i) => `${i.host}/${i.vmId}`));
  const missing = vms
    .filter((v) => v.deleted_at === null && v.status === 'running' && !alive.has(`${v.worker_id}/${v.id}`))
    .map((v) => `${v.name} running on ${v.worker_id} in the database, no init there`);
  const problems = [
    launchedTwice.length ? `launched on two hosts: ${list(launchedTwice)}` : '',
    seenTwice.length ? `alive on two hosts: ${list(seenTwice)}` : '',
    elsewhere.length ? `launched off its placement: ${list(elsewhere)}` : '',
    orphans.length ? `orphan inits: ${list(orphans)}` : '',
    missing.length ? `missing inits: ${list(missing)}` : '',
  ].filter(Boolean);
  return {
    name: 'no VM on two hosts',
    ok: problems.length === 0,
    detail: problems.length
      ? problems.join('; ')
      : `${hostsOf.size} VMs each on one host, the placed one; ${finalInits.length} inits alive at the end, all expected`,
  };
}

/**
 * Capacity: each worker's used CPU, memory, disk and VM count equal the sums over the VMs that
 * hold a reservation on it. Checked at each `moment` given: under load only the database's
 * snapshot can be compared (`api` null), at rest GET /workers too. At rest no deleted VM may hold
 * a reservation; under load one may, for the instant between a delete being recorded and its
 * capacity given back (they are two writes): those are named in the detail, and fail only if
 * they are still held at rest.
 */
export function capacityMatches(
  moments: { label: string; sql: WorkerUsage[]; api: WorkerUsage[] | null; vms: VmRow[] }[],
): CheckResult {
  const problems: string[] = [];
  const summary: string[] = [];
  const passing: string[] = [];
  for (const { label, sql, api, vms } of moments) {
    for (const worker of sql) {
      const held = vms.filter((v) => v.reserved && v.worker_id === worker.id);
      const expected = {
        used_cpu_cores: held.reduce((s, v) => s + v.vcpus, 0),
        used_memory_mb: held.reduce((s, v) => s + v.memory_mb, 0),
        used_disk_gb: held.reduce((s, v) => s + v.disk_gb, 0),
        vm_count: held.length,
      };
      const fromApi = api?.find((w) => w.id === worker.id);
      for (const [field, value] of Object.entries(expected) as [keyof typeof expected, number][]) {
        if (worker[field] !== value)
          problems.push(`${label}: ${worker.id} ${field} ${worker[field]} in the database, ${value} reserved`);
        if (fromApi && fromApi[field] !== value)
          problems.push(`${label}: ${worker.id} ${field} ${fromApi[field]} in GET /workers, ${value} reserved`);
      }
      if (api && !fromApi) problems.push(`${label}: ${worker.id} missing from GET /workers`);
    }
    summary.push(`${label}: ${sql.map((w) => `${w.id} ${w.vm_count}`).join(' ')}`);
    const stale = vms.filter((v) => v.reserved && v.deleted_at !== null).map((v) => v.name);
    if (stale.length && api !== null) problems.push(`${label}: deleted VMs still reserved: ${list(stale)}`);
    else if (stale.length) passing.push(`${label}: ${list(stale)}`);
  }
  return {
    name: 'capacity = live reservations',
    ok: problems.length === 0,
    detail: problems.length
      ? list(problems, 6)
      : `VMs held per worker, equal to the reservations at ${moments.length} moments: ${summary.join('; ')}${passing.length ? `; deleted and not yet released under load (released by the end): ${passing.join('; ')}` : ''}`,
  };
}

/**
 * Events once and in order: the resuming client never got an id twice nor a smaller one after
 * a greater one, and missed none that Redis' stream holds between its first position and its last
 * event, except where a connection was told of a gap (those it must resync from the REST API).
 */
export function eventsOnceInOrder(
  received: number[],
  connections: Connection[],
  baseline: number,
  streamIds: number[],
): CheckResult {
  const seen = new Set<number>();
  const duplicates: number[] = [];
  const disorder: string[] = [];
  let previous = baseline;
  for (const id of received) {
    if (seen.has(id)) duplicates.push(id);
    else if (id < previous) disorder.push(`${id} after ${previous}`);
    seen.add(id);
    previous = Math.max(previous, id);
  }
  const last = received.length ? Math.max(...received) : baseline;
  // A gap excuses what lies between the id it resumed after and the first event it then delivered.
  const excused = connections
    .filter((c) => c.gap !== null)
    .map((c) => [c.since ?? baseline, c.firstEventId ?? Number.POSITIVE_INFINITY] as const);
  const missing = streamIds.filter(
    (id) => id > baseline && id <= last && !seen.has(id) && !excused.some(([a, b]) => id > a && id < b),
  );
  const resumed = connections.filter((c) => c.since !== null).length;
  const gaps = connections.filter((c) => c.gap !== null).length;
  const problems = [
    duplicates.length ? `ids received twice: ${list(duplicates.map(String))}` : '',
    disorder.length ? `out of order: ${list(disorder)}` : '',
    missing.length ? `in the stream, never received: ${list(missing.map(String))}` : '',
    resumed === 0 ? 'the client never had to resume: the faults did not reach it' : '',
  ].filter(Boolean);
  return {
    name: 'events once, in order',
    ok: problems.length === 0,
    detail: `${received.length} events over ${connections.length} connections (${resumed} resumed, ${gaps} told of a gap)${problems.length ? `: ${problems.join('; ')}` : ', none twice, none out of order, none missed'}`,
  };
}

/** Every process of the cluster is running at the end (each one killed was started again and stayed up). */
export function processesAlive(processes: { name: string; alive: boolean; tail: string }[]): CheckResult {
  const dead = processes.filter((p) => !p.alive);
  return {
    name: 'every process up',
    ok: dead.length === 0,
    detail: dead.length
      ? dead.map((p) => `${p.name} exited: ${p.tail.slice(-300)}`).join('; ')
      : `${processes.map((p) => p.name).join(', ')} running`,
  };
}
