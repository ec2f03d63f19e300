/**
 * AN EMULATION OF CONSUL'S HTTP API, NOT CONSUL. No Consul binary can run where these tests run
 * (only the npm registry and Debian packages are reachable, and Debian ships no Consul), so the
 * Consul registry adapter is tested against this small node:http server, written from Consul's
 * documentation. It emulates exactly the endpoints the adapter uses, as one agent on one node:
 *
 *   PUT /v1/agent/service/register            api-docs/agent/service.mdx  "Register Service"
 *   PUT /v1/agent/service/deregister/:id      api-docs/agent/service.mdx  "Deregister Service"
 *   PUT /v1/agent/check/pass/:check_id        api-docs/agent/check.mdx    "TTL Check Pass"
 *   GET /v1/health/service/:service           api-docs/health.mdx         "List Service Instances for Service"
 *
 * plus the cross-cutting behaviour those pages point to: blocking queries (api-docs/features/
 * blocking.mdx: `index` + `wait`, `X-Consul-Index`, wait capped at 10 min, up to wait/16 jitter),
 * ACL tokens (api-docs/api-structure.mdx "Authentication": `X-Consul-Token`, `Authorization: Bearer`,
 * or `?token=`; 403 "ACL not found" for an unknown token, 403 "Permission denied" when it lacks the
 * permission; reads filtered, with `X-Consul-Results-Filtered-By-ACLs: true`), and service Meta
 * validation (Consul's agent/structs ValidateMetadata: at most 64 pairs, keys of [A-Za-z0-9_-] up
 * to 128 characters, not starting with "consul-", values up to 512 bytes; a 400 "Invalid Service
 * Meta: …" otherwise).
 *
 * TTL checks turn critical ("TTL expired") when not passed within their TTL. A service whose check
 * stays critical longer than its DeregisterCriticalServiceAfter is removed by a reaper; the docs
 * (api-docs/agent/check.mdx) give a 1 minute minimum and a reaper that runs every 30 s. Both are
 * the defaults here; tests may shorten them (`minDeregisterCriticalServiceAfterMs`,
 * `reapIntervalMs`) to see the reaping within seconds.
 *
 * HTTPS (`tls`): served by node:https with the test CA's server certificate, as an agent with
 * `tls { defaults { ca_file, cert_file, key_file } }` and `ports { https = … }` would; with
 * `verifyClients` a client without a certificate signed by the test CA is refused in the
 * handshake (Consul's `verify_incoming = true`). This is still the emulation, not Consul.
 *
 * Deliberately NOT emulated: other endpoints, non-TTL checks, catalog anti-entropy and its
 * `check_update_interval`, several agents/nodes, namespaces, `filter` expressions, streaming.
 * Where the docs are silent, the choice is commented.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { TestCertificates } from './test-certs.ts';

export interface ConsulApiOptions {
  datacenter?: string;
  nodeName?: string;
  /** ACL tokens and what they may do. Undefined: ACLs disabled. Defined: default policy deny (the anonymous token may nothing). */
  aclTokens?: Record<string, 'read' | 'write'>;
  /** Docs: "The minimum timeout is 1 minute". Default 60 000. */
  minDeregisterCriticalServiceAfterMs?: number;
  /** Docs: "the process that reaps critical services runs every 30 seconds". Default 30 000. */
  reapIntervalMs?: number;
  /** Serve HTTPS only (see the header); without it, plain HTTP as before. */
  tls?: {
    /** The server presents `certs.server`; client certificates must be signed by `certs.ca`. */
    certs: TestCertificates;
    /** Consul's `verify_incoming`: refuse clients without a certificate. */
    verifyClients?: boolean;
  };
}

export interface RecordedRequest {
  method: string;
  path: string;
  token: string | null;
  /** The parsed JSON body of a register request. */
  body?: unknown;
}

export interface ConsulApi {
  /** `127.0.0.1:<port>`, as `discovery.consul.address` takes it. */
  address: string;
  /** `http://127.0.0.1:<port>` (`https://` with `tls`). */
  url: string;
  datacenter: string;
  /** Every request, in order. */
  requests: RecordedRequest[];
  /** The current raft index (what `X-Consul-Index` reports). */
  index(): number;
  /** Plays a snapshot restore: the index goes back (blocking.mdx: "Reset the index if it goes backwards"). */
  rewindIndex(to: number): void;
  /** The next `count` requests get this answer instead (outage and error tests). */
  failNext(count: number, status: number, body: string): void;
  serviceIds(): string[];
  checkStatus(checkId: string): string | undefined;
  stop(): Promise<void>;
}

type Status = 'passing' | 'warning' | 'critical';

interface CheckState {
  id: string;
  name: string;
  ttlMs: number;
  status: Status;
  output: string;
  notes: string;
  deregisterAfterMs: number;
  deadline: number;
  criticalSince: number | null;
  createIndex: number;
  modifyIndex: number;
}

interface ServiceState {
  id: string;
  name: string;
  tags: string[];
  address: string;
  port: number;
  meta: Record<string, string>;
  check: CheckState | null;
  createIndex: number;
  modifyIndex: number;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

const ANONYMOUS_ACCESSOR = '00000000-0000-0000-0000-000000000002';
const MAX_WAIT_MS = 10 * 60_000; // blocking.mdx: "This is limited to 10 minutes"
const DEFAULT_WAIT_MS = 5 * 60_000; // blocking.mdx: "If not set, the wait time defaults to 5 minutes"

/** Go's time.ParseDuration, for the units Consul users write. */
export function parseGoDuration(text: string): number {
  if (text === '0') return 0;
  const units: Record<string, number> = { ns: 1e-6, us: 1e-3, µs: 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * units[m[2]!]!;
    consumed = re.lastIndex;
  }
  if (consumed !== text.length || text.length === 0)
    throw new HttpError(400, `Request decode failed: time: invalid duration "${text}"`);
  return total;
}

/** agent/structs ValidateMetadata + validateMetaPair, with Consul's messages. */
function validateMeta(meta: Record<string, string>): void {
  const entries = Object.entries(meta);
  if (entries.length > 64)
    throw new HttpError(400, 'Invalid Service Meta: Node metadata cannot contain more than 64 key/value pairs');
  for (const [key, value] of entries) {
    let reason: string | null = null;
    if (key === '') reason = 'Key cannot be blank';
    else if (!/^[a-zA-Z0-9_-]+$/.test(key)) reason = 'Key contains invalid characters';
    else if (key.length > 128) reason = 'Key is too long (limit: 128 characters)';
    else if (key.startsWith('consul-')) reason = "Key prefix 'consul-' is reserved for internal use";
    else if (typeof value !== 'string')
      throw new HttpError(400, `Request decode failed: Meta.${key}: expected a string`);
    else if (Buffer.byteLength(value, 'utf8') > 512) reason = 'Value is too long (limit: 512 characters)';
    if (reason)
      throw new HttpError(400, `Invalid Service Meta: Couldn't load metadata pair ('${key}', '${value}'): ${reason}`);
  }
}

export async function startConsulApi(options: ConsulApiOptions = {}): Promise<ConsulApi> {
  const datacenter = options.datacenter ?? 'dc1';
  const nodeName = options.nodeName ?? 'emulated-agent';
  const nodeId = randomUUID();
  const minDeregisterMs = options.minDeregisterCriticalServiceAfterMs ?? 60_000;
  const reapIntervalMs = options.reapIntervalMs ?? 30_000;
  const acl = options.aclTokens;

  const services = new Map<string, ServiceState>();
  const requests: RecordedRequest[] = [];
  let index = 1;
  let failures: { count: number; status: number; body: string } | null = null;
  const waiters = new Set<() => void>();

  const bump = (): number => {
    index++;
    for (const wake of [...waiters]) wake();
    return index;
  };

  // ── TTL expiry and the critical-service reaper ────────────────────────────────────────────────
  const ttlTimer = setInterval(() => {
    const now = Date.now();
    for (const service of services.values()) {
      const check = service.check;
      if (!check || check.status === 'critical' || now < check.deadline) continue;
      check.status = 'critical';
      check.output = 'TTL expired';
      check.criticalSince = now;
      check.modifyIndex = bump();
    }
  }, 50);
  const reapTimer = setInterval(() => {
    const now = Date.now();
    for (const service of [...services.values()]) {
      const check = service.check;
      if (check?.status !== 'critical' || check.deregisterAfterMs <= 0 || check.criticalSince === null) continue;
      if (now - check.criticalSince > check.deregisterAfterMs) {
        services.delete(service.id);
        bump();
      }
    }
  }, reapIntervalMs);
  ttlTimer.unref();
  reapTimer.unref();

  // ── ACLs (api-structure.mdx "Authentication") ──────────────────────────────────────────────────
  function tokenOf(req: IncomingMessage, url: URL): string | null {
    const header = req.headers['x-consul-token'];
    if (typeof header === 'string' && header) return header;
    const auth = req.headers.authorization;
    if (typeof auth === 'string' && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '');
    return url.searchParams.get('token');
  }

  /** Throws 403 for an unknown token; returns what the token may do. */
  function permission(token: string | null): 'read' | 'write' | 'none' | 'all' {
    if (!acl) return 'all';
    if (token === null || token === '') return 'none'; // anonymous, default policy deny
    const granted = acl[token];
    if (!granted) throw new HttpError(403, 'ACL not found');
    return granted;
  }

  function requireWrite(token: string | null, resource: string): void {
    const p = permission(token);
    if (p === 'all' || p === 'write') return;
    const accessor = token ? `token-${token.slice(0, 4)}` : ANONYMOUS_ACCESSOR;
    throw new HttpError(
      403,
      `Permission denied: token with AccessorID '${accessor}' lacks permission 'service:write' on "${resource}"`,
    );
  }

  // ── endpoints ──────────────────────────────────────────────────────────────────────────────────

  /** agent/service.mdx "Register Service": PUT, ACL service:write. */
  function register(body: unknown, token: string | null): void {
    if (typeof body !== 'object' || body === null || Array.isArray(body))
      throw new HttpError(400, 'Request decode failed: expected a JSON object');
    const def = body as Record<string, unknown>;
    const name = typeof def.Name === 'string' ? def.Name : '';
    if (!name) throw new HttpError(400, 'Missing service name');
    requireWrite(token, name);
    const id = typeof def.ID === 'string' && def.ID ? def.ID : name; // "This defaults to the Name parameter"
    const meta = (def.Meta ?? {}) as Record<string, string>;
    if (typeof meta !== 'object' || Array.isArray(meta))
      throw new HttpError(400, 'Request decode failed: Meta must be an object');
    validateMeta(meta);
    const tags = Array.isArray(def.Tags) ? def.Tags.map(String) : [];
    if (def.Checks !== undefined && def.Checks !== null)
      throw new HttpError(400, 'this emulation supports a single TTL "Check" only, not "Checks"');

    let check: CheckState | null = null;
    const existing = services.get(id);
    if (def.Check !== undefined && def.Check !== null) {
      const c = def.Check as Record<string, unknown>;
      if (typeof c.TTL !== 'string' || !c.TTL)
        throw new HttpError(400, 'this emulation supports TTL checks only (Check.TTL is required)');
      const ttlMs = parseGoDuration(c.TTL);
      if (ttlMs <= 0) throw new HttpError(400, 'Invalid check: TTL must be > 0');
      const deregister =
        typeof c.DeregisterCriticalServiceAfter === 'string' ? parseGoDuration(c.DeregisterCriticalServiceAfter) : 0;
      const checkId = typeof c.CheckID === 'string' && c.CheckID ? c.CheckID : `service:${id}`; // check.mdx / service.mdx: generated when absent
      let status: Status = 'critical'; // checks start critical unless Status says otherwise
      if (c.Status === 'passing' || c.Status === 'warning' || c.Status === 'critical') status = c.Status;
      let output = '';
      // Consul keeps the status and output of a check that already exists across a re-registration
      // (agent.addServiceInternal restores them from its check snapshot); the TTL timer starts anew.
      if (existing?.check && existing.check.id === checkId) {
        status = existing.check.status;
        output = existing.check.output;
      }
      const now = Date.now();
      check = {
        id: checkId,
        name: typeof c.Name === 'string' && c.Name ? c.Name : `Service '${name}' check`,
        ttlMs,
        status,
        output,
        notes: typeof c.Notes === 'string' ? c.Notes : '',
        // check.mdx: "The minimum timeout is 1 minute".
        deregisterAfterMs: deregister > 0 ? Math.max(deregister, minDeregisterMs) : 0,
        deadline: now + ttlMs,
        criticalSince: status === 'critical' ? (existing?.check?.criticalSince ?? now) : null,
        createIndex: existing?.check?.createIndex ?? 0,
        modifyIndex: existing?.check?.modifyIndex ?? 0,
      };
    }
    const next: ServiceState = {
      id,
      name,
      tags,
      address: typeof def.Address === 'string' ? def.Address : '',
      port: typeof def.Port === 'number' ? def.Port : 0,
      meta: { ...meta },
      check,
      createIndex: existing?.createIndex ?? 0,
      modifyIndex: existing?.modifyIndex ?? 0,
    };
    const visible = (s: ServiceState | undefined) =>
      s &&
      JSON.stringify([
        s.name,
        s.tags,
        s.address,
        s.port,
        s.meta,
        s.check && [s.check.id, s.check.name, s.check.status, s.check.output, s.check.ttlMs],
      ]);
    services.set(id, next);
    // An identical re-registration changes nothing a reader sees: the index stays (no spurious wake-ups).
    if (visible(existing) !== visible(next)) {
      const i = bump();
      if (!existing) next.createIndex = i;
      next.modifyIndex = i;
      if (check) {
        if (!existing?.check) check.createIndex = i;
        check.modifyIndex = i;
      }
    }
  }

  /** agent/service.mdx "Deregister Service": "If the service does not exist, no action is taken." */
  function deregister(id: string, token: string | null): void {
    const existing = services.get(id);
    requireWrite(token, existing?.name ?? id);
    if (!existing) return;
    services.delete(id);
    bump();
  }

  /** agent/check.mdx "TTL Check Pass": status passing, TTL clock reset, `note` → Output. */
  function pass(checkId: string, note: string, token: string | null): void {
    const service = [...services.values()].find((s) => s.check?.id === checkId);
    requireWrite(token, service?.name ?? checkId);
    // The docs do not say; agents answer that the check "does not have associated TTL" (404 on
    // current versions, 500 on older ones: the adapter handles both).
    if (!service?.check) throw new HttpError(404, `CheckID "${checkId}" does not have associated TTL`);
    const check = service.check;
    const changed = check.status !== 'passing' || check.output !== note;
    check.status = 'passing';
    check.output = note;
    check.deadline = Date.now() + check.ttlMs;
    check.criticalSince = null;
    if (changed) check.modifyIndex = bump();
  }

  function entryOf(service: ServiceState) {
    const checks: Array<Record<string, unknown> & { Status: string }> = [
      {
        Node: nodeName,
        CheckID: 'serfHealth',
        Name: 'Serf Health Status',
        Status: 'passing',
        Notes: '',
        Output: 'Agent alive and reachable',
        ServiceID: '',
        ServiceName: '',
        ServiceTags: [],
        Type: '',
        CreateIndex: 1,
        ModifyIndex: 1,
      },
    ];
    if (service.check) {
      checks.push({
        Node: nodeName,
        CheckID: service.check.id,
        Name: service.check.name,
        Status: service.check.status,
        Notes: service.check.notes,
        Output: service.check.output,
        ServiceID: service.id,
        ServiceName: service.name,
        ServiceTags: service.tags,
        Type: 'ttl',
        CreateIndex: service.check.createIndex,
        ModifyIndex: service.check.modifyIndex,
      });
    }
    return {
      Node: {
        ID: nodeId,
        Node: nodeName,
        Address: '127.0.0.1',
        Datacenter: datacenter,
        TaggedAddresses: { lan: '127.0.0.1', wan: '127.0.0.1' },
        Meta: {},
        CreateIndex: 1,
        ModifyIndex: 1,
      },
      Service: {
        ID: service.id,
        Service: service.name,
        Tags: service.tags,
        Address: service.address,
        Meta: service.meta,
        Port: service.port,
        Weights: { Passing: 1, Warning: 1 },
        EnableTagOverride: false,
        CreateIndex: service.createIndex,
        ModifyIndex: service.modifyIndex,
      },
      Checks: checks,
    };
  }

  /** health.mdx "List Service Instances for Service", with blocking (features/blocking.mdx). */
  async function healthService(
    _req: IncomingMessage,
    res: ServerResponse,
    name: string,
    url: URL,
    token: string | null,
  ): Promise<void> {
    const p = permission(token); // 403 "ACL not found" for an unknown token
    const dc = url.searchParams.get('dc');
    if (dc && dc !== datacenter) throw new HttpError(500, 'No path to datacenter');
    const minIndex = Number(url.searchParams.get('index') ?? '0');
    if (!Number.isInteger(minIndex) || minIndex < 0) throw new HttpError(400, 'Invalid index');
    if (minIndex > 0) {
      const waitText = url.searchParams.get('wait');
      const wait = Math.min(waitText ? parseGoDuration(waitText) : DEFAULT_WAIT_MS, MAX_WAIT_MS);
      const deadline = Date.now() + wait + Math.random() * (wait / 16);
      // Hold the request while nothing newer than `index` exists (an index ahead of ours, e.g.
      // after a restore, therefore waits for the whole `wait`).
      while (index <= minIndex && Date.now() < deadline && !res.closed) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
          waiters.add(done);
          res.once('close', done); // the client gave up
          function done() {
            clearTimeout(timer);
            waiters.delete(done);
            res.off('close', done);
            resolve();
          }
        });
      }
      if (res.closed) return;
    }
    const passingOnly = url.searchParams.has('passing') && url.searchParams.get('passing') !== 'false';
    const wantedTags = url.searchParams.getAll('tag');
    let entries = [...services.values()]
      .filter((s) => s.name === name)
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
      .map(entryOf)
      .filter((e) => !passingOnly || e.Checks.every((c) => c.Status === 'passing'))
      .filter((e) => wantedTags.every((t) => e.Service.Tags.includes(t)));
    let filtered = false;
    if (p === 'none' && entries.length > 0) {
      entries = []; // default deny: the anonymous token may not read the service
      filtered = true;
    }
    const headers: Record<string, string> = {
      'X-Consul-Index': String(index),
      'X-Consul-KnownLeader': 'true',
      'X-Consul-LastContact': '0',
    };
    if (filtered) headers['X-Consul-Results-Filtered-By-ACLs'] = 'true';
    send(res, 200, entries, headers);
  }

  function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
    if (res.closed) return;
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    res.writeHead(status, {
      'Content-Type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json',
      ...headers,
    });
    res.end(text);
  }

  async function readBody(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch (err) {
      throw new HttpError(400, `Request decode failed: ${(err as Error).message}`);
    }
  }

  const handler = (req: IncomingMessage, res: ServerResponse) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://consul.invalid');
      const token = tokenOf(req, url);
      const recorded: RecordedRequest = { method: req.method ?? '', path: url.pathname + url.search, token };
      requests.push(recorded);
      try {
        if (failures && failures.count > 0) {
          failures.count--;
          const { status, body } = failures;
          if (failures.count === 0) failures = null;
          await readBody(req).catch(() => undefined);
          return send(res, status, body);
        }
        const path = url.pathname;
        const needPut = () => {
          if (req.method !== 'PUT') throw new HttpError(405, `method ${req.method} not allowed`);
        };
        let m: RegExpExecArray | null;
        if (path === '/v1/agent/service/register') {
          needPut();
          recorded.body = await readBody(req);
          register(recorded.body, token);
          return send(res, 200, '');
        }
        if ((m = /^\/v1\/agent\/service\/deregister\/(.+)$/.exec(path))) {
          needPut();
          deregister(decodeURIComponent(m[1]!), token);
          return send(res, 200, '');
        }
        if ((m = /^\/v1\/agent\/check\/pass\/(.+)$/.exec(path))) {
          needPut();
          pass(decodeURIComponent(m[1]!), url.searchParams.get('note') ?? '', token);
          return send(res, 200, '');
        }
        if ((m = /^\/v1\/health\/service\/(.+)$/.exec(path))) {
          if (req.method !== 'GET') throw new HttpError(405, `method ${req.method} not allowed`);
          return await healthService(req, res, decodeURIComponent(m[1]!), url, token);
        }
        send(res, 404, '404 page not found');
      } catch (err) {
        if (err instanceof HttpError) return send(res, err.status, err.message);
        send(res, 500, String(err));
      }
    })();
  };
  const tls = options.tls;
  const server = tls
    ? createHttpsServer(
        {
          cert: readFileSync(tls.certs.server.cert),
          key: readFileSync(tls.certs.server.key),
          ca: readFileSync(tls.certs.ca),
          requestCert: tls.verifyClients === true,
          rejectUnauthorized: tls.verifyClients === true,
        },
        handler,
      )
    : createServer(handler);

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as { port: number }).port;

  return {
    address: `127.0.0.1:${port}`,
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    datacenter,
    requests,
    index: () => index,
    rewindIndex(to: number) {
      index = to;
    },
    failNext(count, status, body) {
      failures = { count, status, body };
    },
    serviceIds: () => [...services.keys()].sort(),
    checkStatus: (checkId) => [...services.values()].find((s) => s.check?.id === checkId)?.check?.status,
    async stop() {
      clearInterval(ttlTimer);
      clearInterval(reapTimer);
      for (const wake of [...waiters]) wake();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
