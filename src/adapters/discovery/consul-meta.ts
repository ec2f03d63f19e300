/**
 * A worker record as a Consul service instance. Consul service Meta is a flat string map with hard
 * limits, so the record is spread over ONE META KEY PER FIELD, never one big JSON value:
 *
 *   aetherium = "1"                        marks our instances (and the encoding version)
 *   hostname, zone, status, eligible, cpu_cores, memory_mb, disk_gb, max_vms, ttl_seconds,
 *   started_at, registered_at              one key each (numbers and booleans as text, dates ISO 8601)
 *   capabilities = "kvm,gpu"               joined with ","
 *   label_<key>  = <value>                 one entry per label
 *   md_<key>     = <JSON of the value>     one entry per metadata key
 *
 * Consul accepts meta keys of letters, digits, "-" and "_" only; any other character of a label or
 * metadata key (and "_" itself) is written as "_" + two hex digits per UTF-8 byte, e.g. label
 * `gpu.model` becomes `label_gpu_2emodel`, and decoded back.
 *
 * Limits (checked here, before anything is sent, with an error naming the offending field):
 * a value may not exceed 512 bytes (Consul counts bytes), a key 64 characters, a service 64 entries.
 * Consul itself allows keys of up to 128 characters (`metaKeyMaxLength` in agent/structs); 64 is our
 * stricter, deliberate limit. The address goes to Address/Port, zone and capabilities also go to Tags
 * (`zone:<zone>`, `cap:<capability>`) so Consul's own tag filters and DNS can use them.
 */
import { invalid, type WorkerStatus } from '../../domain/index.ts';
import { isWorkerStatus, type WorkerRecord } from './worker-record.ts';

export const META_KEY_MAX_CHARS = 64;
export const META_VALUE_MAX_BYTES = 512;
export const META_MAX_ENTRIES = 64;
export const META_MARKER_KEY = 'aetherium';
const META_VERSION = '1';
const LABEL_PREFIX = 'label_';
const METADATA_PREFIX = 'md_';

/** `[A-Za-z0-9-]` stay; every other UTF-8 byte becomes `_hh`. Reversible, and valid for Consul. */
export function encodeKeyPart(part: string): string {
  let out = '';
  for (const char of part) {
    if (/^[A-Za-z0-9-]$/.test(char)) out += char;
    else for (const byte of Buffer.from(char, 'utf8')) out += `_${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

export function decodeKeyPart(encoded: string): string | null {
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; ) {
    if (encoded[i] === '_') {
      const hex = encoded.slice(i + 1, i + 3);
      if (!/^[0-9a-f]{2}$/.test(hex)) return null;
      bytes.push(parseInt(hex, 16));
      i += 3;
    } else {
      bytes.push(encoded.charCodeAt(i));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** `10.0.0.7:9100` → Address + Port; anything else stays whole in Address with Port 0. */
export function splitAddress(address: string): { Address: string; Port: number } {
  const bracketed = /^\[([^\]]+)\]:(\d{1,5})$/.exec(address);
  const plain = /^([^:/\s]+):(\d{1,5})$/.exec(address);
  const match = bracketed ?? plain;
  if (match && Number(match[2]) <= 65535) return { Address: match[1]!, Port: Number(match[2]) };
  return { Address: address, Port: 0 };
}

export function joinAddress(address: string, port: number): string {
  if (!port) return address;
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function tagsFor(record: WorkerRecord): string[] {
  return [`zone:${record.zone}`, ...record.capabilities.map((c) => `cap:${c}`)];
}

/** The Meta map of a record; throws `validation_failed` listing every field that cannot fit. */
export function encodeMeta(record: WorkerRecord): Record<string, string> {
  const problems: string[] = [];
  const meta: Record<string, string> = {};
  const put = (key: string, value: string, what: string) => {
    if (key.length > META_KEY_MAX_CHARS) {
      problems.push(`${what}: its meta key "${key}" is ${key.length} characters (at most ${META_KEY_MAX_CHARS})`);
      return;
    }
    const bytes = Buffer.byteLength(value, 'utf8');
    if (bytes > META_VALUE_MAX_BYTES)
      problems.push(`${what} is ${bytes} bytes (a Consul meta value holds at most ${META_VALUE_MAX_BYTES})`);
    meta[key] = value;
  };

  put(META_MARKER_KEY, META_VERSION, 'marker');
  put('hostname', record.hostname, 'hostname');
  put('zone', record.zone, 'zone');
  put('status', record.status, 'status');
  put('eligible', String(record.eligible), 'eligible');
  put('cpu_cores', String(record.cpu_cores), 'cpu_cores');
  put('memory_mb', String(record.memory_mb), 'memory_mb');
  put('disk_gb', String(record.disk_gb), 'disk_gb');
  put('max_vms', String(record.max_vms), 'max_vms');
  put('ttl_seconds', String(record.ttl_seconds), 'ttl_seconds');
  put('started_at', record.started_at.toISOString(), 'started_at');
  put('registered_at', record.registered_at.toISOString(), 'registered_at');
  const badCapabilities = record.capabilities.filter((c) => c === '' || c.includes(','));
  if (badCapabilities.length)
    problems.push(`capabilities ${JSON.stringify(badCapabilities)}: a capability must be non-empty and contain no ","`);
  put('capabilities', record.capabilities.join(','), 'capabilities (joined with ",")');
  for (const [key, value] of Object.entries(record.labels)) {
    if (key === '') problems.push('a label has an empty key');
    else put(LABEL_PREFIX + encodeKeyPart(key), String(value), `label "${key}"`);
  }
  for (const [key, value] of Object.entries(record.metadata)) {
    if (key === '') problems.push('a metadata entry has an empty key');
    else put(METADATA_PREFIX + encodeKeyPart(key), JSON.stringify(value) ?? 'null', `metadata "${key}" (as JSON)`);
  }
  const entries = Object.keys(meta).length;
  if (entries > META_MAX_ENTRIES) {
    problems.push(
      `${entries} meta entries (${Object.keys(record.labels).length} labels, ${Object.keys(record.metadata).length} metadata keys and 13 fixed fields); a Consul service holds at most ${META_MAX_ENTRIES}`,
    );
  }
  if (problems.length)
    throw invalid(`worker ${record.id} cannot be registered in Consul: ${problems.join('; ')}`, { problems });
  return meta;
}

function date(value: string | undefined): Date | null {
  if (!value) return null;
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A record from a service instance; null when the instance is not ours (no marker) or is damaged. */
export function decodeService(service: {
  ID: string;
  Address?: string;
  Port?: number;
  Meta?: Record<string, string> | null;
}): Omit<WorkerRecord, 'last_seen'> | null {
  const meta = service.Meta ?? {};
  if (meta[META_MARKER_KEY] !== META_VERSION) return null;
  const status = meta.status;
  const startedAt = date(meta.started_at);
  const registeredAt = date(meta.registered_at);
  if (!isWorkerStatus(status) || !startedAt || !registeredAt) return null;
  const labels: Record<string, string> = {};
  const metadata: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) {
    if (key.startsWith(LABEL_PREFIX)) {
      const name = decodeKeyPart(key.slice(LABEL_PREFIX.length));
      if (name !== null) labels[name] = value;
    } else if (key.startsWith(METADATA_PREFIX)) {
      const name = decodeKeyPart(key.slice(METADATA_PREFIX.length));
      if (name === null) continue;
      try {
        metadata[name] = JSON.parse(value);
      } catch {
        metadata[name] = value;
      }
    }
  }
  return {
    id: service.ID,
    hostname: meta.hostname ?? '',
    address: joinAddress(service.Address ?? '', service.Port ?? 0),
    zone: meta.zone ?? '',
    labels,
    capabilities: meta.capabilities ? meta.capabilities.split(',') : [],
    cpu_cores: Number(meta.cpu_cores ?? 0),
    memory_mb: Number(meta.memory_mb ?? 0),
    disk_gb: Number(meta.disk_gb ?? 0),
    max_vms: Number(meta.max_vms ?? 0),
    ttl_seconds: Number(meta.ttl_seconds ?? 0),
    metadata,
    status: status as WorkerStatus,
    eligible: meta.eligible !== 'false',
    started_at: startedAt,
    registered_at: registeredAt,
  };
}
