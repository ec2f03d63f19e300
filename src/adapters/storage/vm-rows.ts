/** The `vms` table: row mapper and queries. The hidden `reserved` column is handled in capacity.ts. */
import {
  conflict,
  isUuid,
  VM_BOOT_PHASES,
  type DriverName,
  type Vm,
  type VmFilter,
  type VmPhases,
  type VmStatus,
} from '../../domain/index.ts';
import type { VmPatch } from '../../ports/store.ts';
import { isSqlError, UNIQUE_VIOLATION, type SqlExecutor } from './sql-client.ts';
import {
  date,
  dateOrNull,
  json,
  jsonParam,
  limitClause,
  num,
  textOrNull,
  updateWhereStatus,
  where,
  type Row,
} from './sql-values.ts';

/** The unique index on live VM names (migrations/000001). */
export const VM_LIVE_NAME_INDEX = 'idx_vms_name_live';

export const VM_COLUMNS = `id, name, status, driver, worker_id, zone, labels, image, vcpus, memory_mb, disk_gb, error,
  created_at, updated_at, deleted_at, phases`;

export function toVm(row: Row): Vm {
  return {
    id: String(row.id),
    name: String(row.name),
    status: row.status as VmStatus,
    driver: textOrNull(row.driver) as DriverName | null,
    worker_id: textOrNull(row.worker_id),
    zone: textOrNull(row.zone),
    labels: json<Record<string, string>>(row.labels, {}),
    image: textOrNull(row.image),
    vcpus: num(row.vcpus),
    memory_mb: num(row.memory_mb),
    disk_gb: num(row.disk_gb),
    error: textOrNull(row.error),
    created_at: date(row.created_at),
    updated_at: date(row.updated_at),
    deleted_at: dateOrNull(row.deleted_at),
    phases: toPhases(row.phases),
  };
}

/** The stored phases (ISO strings) as dates; an unknown key or a bad time is left out. */
function toPhases(value: unknown): VmPhases {
  const stored = json<Record<string, unknown>>(value, {});
  const phases: VmPhases = {};
  for (const phase of VM_BOOT_PHASES) {
    const at = stored[phase];
    if (typeof at !== 'string') continue;
    const when = new Date(at);
    if (!Number.isNaN(when.getTime())) phases[phase] = when;
  }
  return phases;
}

/** Records phases of a VM's start: each given phase's time replaces the one stored, the others stay. */
export async function recordVmPhases(db: SqlExecutor, id: string, phases: VmPhases): Promise<void> {
  if (!isUuid(id) || Object.keys(phases).length === 0) return;
  const stored = Object.fromEntries(Object.entries(phases).map(([phase, at]) => [phase, at.toISOString()]));
  await db.query(`UPDATE vms SET phases = phases || $2::jsonb WHERE id = $1`, [id, jsonParam(stored)]);
}

const first = (rows: Row[]): Vm | null => (rows[0] ? toVm(rows[0]) : null);

/**
 * Inserts a VM (not reserved). A duplicate live name becomes a `conflict` AetheriumError. With
 * `ifAbsent`, a VM whose id exists already is left alone and false returned; else a duplicate throws.
 */
export async function insertVm(db: SqlExecutor, vm: Vm, ifAbsent = false): Promise<boolean> {
  try {
    const rows = await db.query(
      `INSERT INTO vms (id, name, status, driver, worker_id, zone, labels, image, vcpus, memory_mb, disk_gb, error,
                        reserved, created_at, updated_at, deleted_at, phases)
       VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11, $12, false, $13, $14, $15, $16::jsonb)
       ${ifAbsent ? 'ON CONFLICT (id) DO NOTHING' : ''} RETURNING id`,
      [
        vm.id,
        vm.name,
        vm.status,
        vm.driver,
        vm.worker_id,
        vm.zone,
        jsonParam(vm.labels ?? {}),
        vm.image,
        vm.vcpus,
        vm.memory_mb,
        vm.disk_gb,
        vm.error,
        vm.created_at,
        vm.updated_at,
        vm.deleted_at,
        jsonParam(Object.fromEntries(Object.entries(vm.phases ?? {}).map(([phase, at]) => [phase, at.toISOString()]))),
      ],
    );
    return rows.length > 0;
  } catch (err) {
    if (
      isSqlError(err, UNIQUE_VIOLATION) &&
      (err.constraint === VM_LIVE_NAME_INDEX || err.message.includes(VM_LIVE_NAME_INDEX))
    ) {
      throw conflict(`a VM named ${JSON.stringify(vm.name)} already exists`, { name: vm.name });
    }
    throw err;
  }
}

export async function getVm(db: SqlExecutor, id: string): Promise<Vm | null> {
  if (!isUuid(id)) return null;
  return first(await db.query<Row>(`SELECT ${VM_COLUMNS} FROM vms WHERE id = $1`, [id]));
}

/** A live VM whose id or name is `idOrName`; an id match wins over a name match. */
export async function findVm(db: SqlExecutor, idOrName: string): Promise<Vm | null> {
  const rows = isUuid(idOrName)
    ? await db.query<Row>(
        `SELECT ${VM_COLUMNS} FROM vms WHERE deleted_at IS NULL AND (id = $1::uuid OR name = $2)
         ORDER BY (id = $1::uuid) DESC LIMIT 1`,
        [idOrName, idOrName],
      )
    : await db.query<Row>(`SELECT ${VM_COLUMNS} FROM vms WHERE deleted_at IS NULL AND name = $1`, [idOrName]);
  return first(rows);
}

/** Newest first. Deleted VMs only with `include_deleted`. */
export async function listVms(db: SqlExecutor, filter: VmFilter = {}): Promise<Vm[]> {
  const params: unknown[] = [];
  const conditions: string[] = [];
  const add = (column: string, value: unknown) => {
    params.push(value);
    conditions.push(`${column} = $${params.length}`);
  };
  if (filter.status !== undefined) add('status', filter.status);
  if (filter.worker_id !== undefined) add('worker_id', filter.worker_id);
  if (filter.name !== undefined) add('name', filter.name);
  if (!filter.include_deleted) conditions.push('deleted_at IS NULL');
  const rows = await db.query<Row>(
    `SELECT ${VM_COLUMNS} FROM vms ${where(conditions)} ORDER BY created_at DESC, id ${limitClause(filter.limit, params)}`,
    params,
  );
  return rows.map(toVm);
}

const VM_PATCH_COLUMNS = {
  status: { column: 'status' },
  error: { column: 'error' },
  driver: { column: 'driver' },
  deleted_at: { column: 'deleted_at' },
  worker_id: { column: 'worker_id' },
};

/** Compare-and-set: applies `patch` only while the VM's status is one of `from` (when given). */
export async function updateVm(
  db: SqlExecutor,
  id: string,
  patch: VmPatch,
  from?: readonly VmStatus[],
): Promise<Vm | null> {
  if (!isUuid(id)) return null;
  const row = await updateWhereStatus(db, 'vms', VM_COLUMNS, id, patch, VM_PATCH_COLUMNS, from);
  return row ? toVm(row) : null;
}
