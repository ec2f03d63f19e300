/**
 * A stand-in for Firecracker's API server, built from Firecracker's published API description
 * (`test/fixtures/firecracker/firecracker.yaml`, Swagger 2.0), loaded at run time:
 *  - every request is matched to the spec's path (templates such as `/drives/{drive_id}`) and method;
 *  - its body is validated against the spec's schema for that operation (the Swagger definitions
 *    converted to JSON Schema, validated with ajv);
 *  - a request that does not match or validate is answered as Firecracker does (400 with
 *    `{ "fault_message": … }`) AND recorded as a violation, for the tests to assert on;
 *  - tests can script answers (any status and body, or no answer at all);
 *  - it emulates the little of Firecracker's behaviour the driver relies on: the instance state
 *    (`GET /`), pre-boot-only resources, the vsock `CONNECT <port>` handshake on `uds_path`, and
 *    exiting when the guest reboots after SendCtrlAltDel.
 *
 * Unknown fields: the Swagger file does not say `additionalProperties: false`, but Firecracker's
 * deserialisers reject unknown fields (serde `deny_unknown_fields`), so by default an object
 * definition that lists its properties and states nothing about others is closed.
 */
import { readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import { parse } from 'yaml';
import type {
  FirecrackerLauncher,
  LaunchRequest,
  VmmProcess,
  VmmRecord,
} from '../../src/adapters/vmm/firecracker/launcher.ts';

/** The copy in `test/fixtures/firecracker/` (see its README), or another file named by FIRECRACKER_API_SPEC. */
export const FIRECRACKER_SPEC_PATH =
  process.env.FIRECRACKER_API_SPEC ??
  fileURLToPath(new URL('../fixtures/firecracker/firecracker.yaml', import.meta.url));

type JsonObject = Record<string, unknown>;

interface SwaggerParameter {
  name: string;
  in: 'body' | 'path' | 'query' | 'header';
  required?: boolean;
  type?: string;
  schema?: JsonObject;
}

export interface SpecOperation {
  method: string;
  /** The spec's path, e.g. `/drives/{drive_id}`. */
  template: string;
  operationId: string;
  pathParams: string[];
  body: { required: boolean; validate: ValidateFunction; schemaRef: string | null } | null;
  regex: RegExp;
}

export interface OperationMatch {
  operation: SpecOperation;
  params: Record<string, string>;
}

export class FirecrackerSpec {
  readonly version: string;
  readonly definitions: Record<string, JsonObject>;
  readonly operations: SpecOperation[] = [];
  private readonly ajv: Ajv;
  private readonly definitionValidators = new Map<string, ValidateFunction>();

  constructor(
    readonly document: JsonObject,
    options: { closeObjects?: boolean } = {},
  ) {
    if (document.swagger !== '2.0')
      throw new Error(`expected a Swagger 2.0 document, got swagger=${String(document.swagger)}`);
    this.version = String((document.info as JsonObject | undefined)?.version ?? 'unknown');
    this.definitions = toJsonSchema(document.definitions ?? {}, options.closeObjects ?? true) as Record<
      string,
      JsonObject
    >;
    this.ajv = new Ajv({ allErrors: true, strict: false });
    this.ajv.addSchema({ $id: 'firecracker', definitions: this.definitions });
    const paths = (document.paths ?? {}) as Record<string, Record<string, JsonObject>>;
    for (const [template, item] of Object.entries(paths)) {
      const pathParams = [...template.matchAll(/\{([^}]+)\}/g)].map((m) => m[1] as string);
      const regex = new RegExp(
        `^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '([^/]+)')}$`,
      );
      for (const [method, op] of Object.entries(item)) {
        if (!['get', 'put', 'patch', 'post', 'delete'].includes(method)) continue;
        const params = (op.parameters ?? []) as SwaggerParameter[];
        const bodyParam = params.find((p) => p.in === 'body');
        let body: SpecOperation['body'] = null;
        if (bodyParam?.schema) {
          const schema = toJsonSchema(bodyParam.schema, options.closeObjects ?? true) as JsonObject;
          const ref = typeof schema.$ref === 'string' ? schema.$ref : null;
          const validate = ref
            ? this.definitionValidator(ref.replace('#/definitions/', ''))
            : this.ajv.compile({ ...schema, definitions: this.definitions });
          body = { required: bodyParam.required === true, validate, schemaRef: ref };
        }
        this.operations.push({
          method: method.toUpperCase(),
          template,
          operationId: String(op.operationId ?? `${method} ${template}`),
          pathParams,
          body,
          regex,
        });
      }
    }
  }

  static load(path: string = FIRECRACKER_SPEC_PATH, options?: { closeObjects?: boolean }): FirecrackerSpec {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`cannot read Firecracker's API description at ${path}: ${(err as Error).message}`);
    }
    return new FirecrackerSpec(parse(text) as JsonObject, options);
  }

  match(method: string, path: string): OperationMatch | null {
    for (const operation of this.operations) {
      if (operation.method !== method.toUpperCase()) continue;
      const m = operation.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      for (const [i, name] of operation.pathParams.entries()) params[name] = decodeURIComponent(m[i + 1] as string);
      return { operation, params };
    }
    return null;
  }

  /** Problems of `value` against definition `name` ([] when it validates). */
  validateDefinition(name: string, value: unknown): string[] {
    const validate = this.definitionValidator(name);
    return validate(value) ? [] : describeErrors(validate);
  }

  definitionValidator(name: string): ValidateFunction {
    let validate = this.definitionValidators.get(name);
    if (!validate) {
      if (!this.definitions[name]) throw new Error(`the spec has no definition ${JSON.stringify(name)}`);
      validate = this.ajv.getSchema(`firecracker#/definitions/${name}`);
      if (!validate) throw new Error(`cannot compile definition ${name}`);
      this.definitionValidators.set(name, validate);
    }
    return validate;
  }
}

/**
 * Swagger 2.0 schema objects are JSON Schema draft 4 with extras. Kept: type, required, properties,
 * enum, items, $ref, minimum/maximum, additionalProperties, default, description. Dropped: `example`
 * (not JSON Schema), and `format`s that JSON Schema does not know (int32/int64 are what `integer`
 * checks; the spec also uses a regex as a "format" for an MMDS IPv4 address, not an operation the
 * driver uses). With `closeObjects`, objects with `properties` and no stated `additionalProperties`
 * get `additionalProperties: false` (Firecracker denies unknown fields).
 */
function toJsonSchema(node: unknown, closeObjects: boolean): unknown {
  if (Array.isArray(node)) return node.map((n) => toJsonSchema(n, closeObjects));
  if (!node || typeof node !== 'object') return node;
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node as JsonObject)) {
    if (key === 'example' || key === 'format') continue;
    if (key === 'properties' && value && typeof value === 'object') {
      out.properties = Object.fromEntries(
        Object.entries(value as JsonObject).map(([k, v]) => [k, toJsonSchema(v, closeObjects)]),
      );
      continue;
    }
    out[key] = toJsonSchema(value, closeObjects);
  }
  if (closeObjects && out.properties && out.additionalProperties === undefined) out.additionalProperties = false;
  // `$ref` with siblings: draft-07 ignores the siblings, which is what Swagger means too.
  if (typeof out.$ref === 'string') return { $ref: out.$ref };
  return out;
}

function describeErrors(validate: ValidateFunction): string[] {
  return (validate.errors ?? []).map((e) => {
    const where = e.instancePath || '(body)';
    if (e.keyword === 'additionalProperties')
      return `${where}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
    if (e.keyword === 'required')
      return `${where}: missing required field ${JSON.stringify((e.params as { missingProperty: string }).missingProperty)}`;
    if (e.keyword === 'enum')
      return `${where}: ${e.message ?? 'not allowed'} (${JSON.stringify((e.params as { allowedValues: unknown[] }).allowedValues)})`;
    return `${where}: ${e.message ?? e.keyword}`;
  });
}

// --- the fake server --------------------------------------------------------------------------

export interface RecordedRequest {
  method: string;
  path: string;
  /** The matched spec path, or null. */
  template: string | null;
  operationId: string | null;
  body: unknown;
  status: number | null;
}

export interface Violation {
  kind: 'route' | 'json' | 'schema' | 'path-param' | 'state';
  method: string;
  path: string;
  message: string;
}

export type ScriptedAnswer = { status: number; body?: unknown } | { hang: true } | { destroy: true };

interface Script {
  method: string;
  path: string;
  answer: ScriptedAnswer;
  times: number;
}

export interface FakeFirecrackerOptions {
  /** Directory Firecracker's paths are relative to (the jail root), default `/`. */
  rootDir?: string;
  /** Port the fake guest agent listens on (vsock). */
  agentPort?: number;
  /** Receives each accepted guest-agent stream (after `OK <port>\n`). Without it, CONNECTs are refused like a guest with no listener. */
  guest?: (stream: Socket) => void;
  /** What the guest does on SendCtrlAltDel: reboot, so Firecracker exits (default), or nothing. */
  onCtrlAltDel?: 'exit' | 'ignore';
}

const PRE_BOOT_ONLY = new Set([
  'putGuestBootSource',
  'putGuestDriveByID',
  'putMachineConfiguration',
  'patchMachineConfiguration',
  'putGuestNetworkInterfaceByID',
  'putGuestVsock',
  'putCpuConfiguration',
]);

export class FakeFirecracker {
  readonly requests: RecordedRequest[] = [];
  readonly violations: Violation[] = [];
  state: 'Not started' | 'Running' = 'Not started';
  exited = false;
  apiSocketPath: string | null = null;
  private server: Server | null = null;
  private vsockServer: NetServer | null = null;
  private vsockPath: string | null = null;
  private readonly scripts: Script[] = [];
  private readonly configured = new Map<string, unknown>();
  private readonly sockets = new Set<Socket>();

  constructor(
    readonly spec: FirecrackerSpec,
    private readonly options: FakeFirecrackerOptions = {},
  ) {}

  /** Answers `method path` (a concrete path or a spec template) with `answer`, `times` times (default: always). */
  script(method: string, path: string, answer: ScriptedAnswer, times = Number.POSITIVE_INFINITY): this {
    this.scripts.push({ method: method.toUpperCase(), path, answer, times });
    return this;
  }

  /** The bodies sent for one spec path template (e.g. `/drives/{drive_id}`) and method. */
  bodies(method: string, template: string): unknown[] {
    return this.requests.filter((r) => r.method === method.toUpperCase() && r.template === template).map((r) => r.body);
  }

  listen(socketPath: string): Promise<void> {
    this.apiSocketPath = socketPath;
    const server = createServer((req, res) => void this.handle(req, res));
    server.on('connection', (s) => this.track(s));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => resolve());
    });
  }

  /** The process "exits": the API and vsock sockets close (their files are left behind, as a crashed VMM leaves them). */
  async exit(): Promise<void> {
    if (this.exited) return;
    this.exited = true;
    for (const s of this.sockets) s.destroy();
    await Promise.all([closeServer(this.server), closeServer(this.vsockServer)]);
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const method = (req.method ?? 'GET').toUpperCase();
    const path = (req.url ?? '/').split('?')[0] as string;
    const match = this.spec.match(method, path);
    const record: RecordedRequest = {
      method,
      path,
      template: match?.operation.template ?? null,
      operationId: match?.operation.operationId ?? null,
      body: undefined,
      status: null,
    };
    this.requests.push(record);
    const reply = (status: number, body?: unknown): void => {
      record.status = status;
      if (body === undefined) {
        res.writeHead(status).end();
      } else {
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        res
          .writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
          .end(text);
      }
    };
    const violate = (kind: Violation['kind'], message: string): void => {
      this.violations.push({ kind, method, path, message });
    };

    let body: unknown;
    let bodyOk = true;
    if (raw.length > 0) {
      try {
        body = JSON.parse(raw);
      } catch {
        bodyOk = false;
        violate('json', `body is not JSON: ${raw.slice(0, 100)}`);
      }
    }
    record.body = body;

    if (!match) {
      violate('route', `no operation ${method} ${path} in the spec`);
      if (this.answer(method, path, null, reply)) return;
      return reply(400, { fault_message: `Invalid request method and/or path: ${method} ${path}.` });
    }
    const { operation, params } = match;
    const problems: string[] = [];
    if (!bodyOk) problems.push('the body is not valid JSON');
    else if (operation.body) {
      if (body === undefined) {
        if (operation.body.required) problems.push('the body is required');
      } else if (!operation.body.validate(body)) {
        problems.push(...describeErrors(operation.body.validate));
      }
    } else if (body !== undefined) {
      problems.push(`${operation.operationId} takes no body`);
    }
    for (const p of problems) violate(bodyOk ? 'schema' : 'json', `${operation.operationId}: ${p}`);
    // Firecracker: "The id from the path does not match the id from the body!"
    for (const [param, field] of [
      ['drive_id', 'drive_id'],
      ['iface_id', 'iface_id'],
    ] as const) {
      const inBody = (body as JsonObject | undefined)?.[field];
      if (params[param] !== undefined && inBody !== undefined && inBody !== params[param]) {
        violate(
          'path-param',
          `${param} ${JSON.stringify(params[param])} in the path differs from ${JSON.stringify(inBody)} in the body`,
        );
        problems.push('The id from the path does not match the id from the body!');
      }
    }

    if (this.answer(method, path, operation.template, reply)) return;
    if (problems.length > 0)
      return reply(400, {
        fault_message: `An error occurred when deserializing the json body of a request: ${problems.join('; ')}`,
      });

    // Behaviour.
    if (PRE_BOOT_ONLY.has(operation.operationId) && this.state !== 'Not started') {
      violate('state', `${operation.operationId} after the microVM started`);
      return reply(400, { fault_message: 'The requested operation is not supported after starting the microVM.' });
    }
    switch (operation.operationId) {
      case 'describeInstance':
        return reply(200, {
          app_name: 'Firecracker',
          id: 'anonymous-instance',
          state: this.state,
          vmm_version: this.spec.version,
        });
      case 'createSyncAction':
        return this.action((body as { action_type: string }).action_type, reply, violate);
      default:
        if (method === 'PUT' || method === 'PATCH')
          this.configured.set(
            operation.template === '/drives/{drive_id}' || operation.template === '/network-interfaces/{iface_id}'
              ? path
              : operation.template,
            body,
          );
        return method === 'GET' ? reply(200, this.configured.get(operation.template) ?? {}) : reply(204);
    }
  }

  /** Applies a scripted answer; true when there was one. */
  private answer(
    method: string,
    path: string,
    template: string | null,
    reply: (status: number, body?: unknown) => void,
  ): boolean {
    const script = this.scripts.find(
      (s) => s.method === method && (s.path === path || s.path === template) && s.times > 0,
    );
    if (!script) return false;
    script.times -= 1;
    const a = script.answer;
    if ('hang' in a) return true; // never answers
    if ('destroy' in a) {
      for (const s of this.sockets) s.destroy();
      return true;
    }
    reply(a.status, a.body);
    return true;
  }

  private action(
    type: string,
    reply: (status: number, body?: unknown) => void,
    violate: (kind: Violation['kind'], message: string) => void,
  ): void {
    if (type === 'InstanceStart') {
      if (this.state !== 'Not started') {
        violate('state', 'InstanceStart on a started microVM');
        return reply(400, { fault_message: 'The requested operation is not supported after starting the microVM.' });
      }
      if (!this.configured.has('/boot-source')) {
        violate('state', 'InstanceStart without a boot source');
        return reply(400, {
          fault_message: 'Cannot start microvm that was not configured: Missing kernel configuration.',
        });
      }
      this.state = 'Running';
      const vsock = this.configured.get('/vsock') as { uds_path: string } | undefined;
      if (vsock) {
        this.startVsock(join(this.options.rootDir ?? '/', vsock.uds_path))
          .then(() => reply(204))
          .catch((err: Error) => reply(400, { fault_message: `vsock: ${err.message}` }));
        return;
      }
      return reply(204);
    }
    if (type === 'SendCtrlAltDel') {
      if (this.state !== 'Running') {
        violate('state', 'SendCtrlAltDel before the microVM started');
        return reply(400, { fault_message: 'The requested operation is not supported before starting the microVM.' });
      }
      reply(204);
      if ((this.options.onCtrlAltDel ?? 'exit') === 'exit') setTimeout(() => void this.exit(), 20);
      return;
    }
    return reply(204); // FlushMetrics
  }

  private startVsock(path: string): Promise<void> {
    this.vsockPath = path;
    const server = createNetServer((socket) => {
      this.track(socket);
      let buffered = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        buffered = Buffer.concat([buffered, chunk]);
        const nl = buffered.indexOf(0x0a);
        if (nl < 0) return;
        socket.off('data', onData);
        const line = buffered.subarray(0, nl).toString('utf8');
        const rest = buffered.subarray(nl + 1);
        const m = /^CONNECT (\d+)$/.exec(line);
        if (!m || Number(m[1]) !== (this.options.agentPort ?? 10_789) || !this.options.guest) {
          socket.destroy(); // Firecracker closes the connection when the guest does not accept
          return;
        }
        socket.write('OK 1073741824\n');
        socket.pause();
        if (rest.length > 0) socket.unshift(rest);
        this.options.guest(socket);
      };
      socket.on('data', onData);
      socket.on('error', () => {});
    });
    this.vsockServer = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  }

  get vsockSocketPath(): string | null {
    return this.vsockPath;
  }
}

function closeServer(server: Server | NetServer | null): Promise<void> {
  if (!server?.listening) return Promise.resolve();
  if ('closeAllConnections' in server) server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

// --- a launcher that starts the fake instead of firecracker -----------------------------------

export interface FakeLauncher extends FirecrackerLauncher {
  readonly launches: LaunchRequest[];
  readonly instances: FakeFirecracker[];
  /** Every violation of every instance launched. */
  violations(): Violation[];
}

export interface FakeLauncherOptions extends Omit<FakeFirecrackerOptions, 'rootDir'> {
  /** Called with each new instance before it listens: script answers here. */
  configure?: (fake: FakeFirecracker, request: LaunchRequest) => void;
  /** The process starts but never creates its API socket (a wedged VMM). */
  noSocket?: boolean;
}

let fakePid = 4_200_000; // above any real pid (pid_max <= 2^22): nothing real is ever signalled

export function fakeLauncher(spec: FirecrackerSpec, options: FakeLauncherOptions = {}): FakeLauncher {
  const launches: LaunchRequest[] = [];
  const instances: FakeFirecracker[] = [];
  const byPid = new Map<number, FakeFirecracker>();
  const handle = (pid: number, fake: FakeFirecracker): VmmProcess => ({
    pid,
    startTime: 'fake',
    alive: () => !fake.exited,
    kill: () => {
      void fake.exit();
      fake.exited = true;
    },
  });
  return {
    launches,
    instances,
    violations: () => instances.flatMap((i) => i.violations),
    async preflight() {},
    async launch(request) {
      launches.push(request);
      const fake = new FakeFirecracker(spec, { ...options, rootDir: request.rootDir });
      instances.push(fake);
      options.configure?.(fake, request);
      if (!options.noSocket) await fake.listen(request.apiSocketPath);
      const pid = ++fakePid;
      byPid.set(pid, fake);
      return handle(pid, fake);
    },
    attach(record: VmmRecord) {
      const fake = byPid.get(record.pid);
      return fake && !fake.exited ? handle(record.pid, fake) : null;
    },
  };
}

/** Removes a socket file a test left (the fake leaves them like a crashed VMM would). */
export function removeSocket(path: string): void {
  rmSync(path, { force: true });
}
