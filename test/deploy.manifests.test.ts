/**
 * The deployment artefacts, checked offline with the tools that consume them: `docker-compose
 * config` for the compose files, `kubectl kustomize` for the Kubernetes manifests (each rendered
 * object validated against the Kubernetes API schemas of kubernetes-models), and a reading of the
 * Dockerfile's stages. Then what matters for security and operation: loopback-only ports,
 * required secrets, a non-root control plane with health probes, the worker's /dev/kvm, the
 * NetworkPolicy that keeps workers on the agent port, the disruption budget and the monitors.
 * No engine, registry or cluster is needed; a missing docker-compose or kubectl fails by name.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as coreV1 from 'kubernetes-models/v1';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const COMPOSE = join(ROOT, 'docker-compose.yml');
const COMPOSE_DEV = join(ROOT, 'docker-compose.dev.yml');

/** The secrets docker-compose.yml requires (`${VAR:?…}`), with values good enough for `config`. */
const COMPOSE_SECRETS = {
  POSTGRES_PASSWORD: 'test-postgres-password',
  GRAFANA_ADMIN_PASSWORD: 'test-grafana-password',
  AETHERIUM_WORKER_METRICS_TOKEN: 'test-worker-metrics-token-0123456789',
};

/** Runs a tool; a tool that is not installed is an error naming it, never a skipped check. */
function run(
  binary: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(binary, args, { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  if (result.error) {
    const code = (result.error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new Error(`${binary} is not installed (not found on PATH): the deployment checks need it`);
    }
    throw result.error;
  }
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

type Obj = Record<string, unknown>;
// biome-ignore lint/suspicious/noExplicitAny: rendered manifests are untyped YAML walked by path
type Any = any;

function asObj(value: unknown): Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Obj) : {};
}

// --- docker compose --------------------------------------------------------------------------

describe('docker compose', () => {
  let envDir: string;
  let emptyEnvFile: string;
  // Only the secrets given here count: an operator's .env beside the files is not read.
  const composeEnv = (extra: Record<string, string>): NodeJS.ProcessEnv => {
    const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
    for (const name of Object.keys(COMPOSE_SECRETS)) if (!(name in extra)) delete env[name];
    return env;
  };
  const compose = (files: string[], env: NodeJS.ProcessEnv, ...args: string[]) =>
    run('docker-compose', [...files.flatMap((f) => ['-f', f]), '--env-file', emptyEnvFile, ...args], env);

  const base: Any = parse(readFileSync(COMPOSE, 'utf8'), { merge: true });

  beforeAll(() => {
    envDir = mkdtempSync(join(tmpdir(), 'aetherium-compose-'));
    emptyEnvFile = join(envDir, 'empty.env');
    writeFileSync(emptyEnvFile, '');
  });
  afterAll(() => rmSync(envDir, { recursive: true, force: true }));

  it('docker-compose config accepts docker-compose.yml, alone and with the dev override', () => {
    const alone = compose([COMPOSE], composeEnv(COMPOSE_SECRETS), 'config', '-q');
    expect(alone.status, alone.stderr).toBe(0);
    const withDev = compose([COMPOSE, COMPOSE_DEV], composeEnv(COMPOSE_SECRETS), 'config', '-q');
    expect(withDev.status, withDev.stderr).toBe(0);
  });

  it('refuses to start without each required secret', () => {
    for (const name of Object.keys(COMPOSE_SECRETS)) {
      const { [name as keyof typeof COMPOSE_SECRETS]: _left, ...others } = COMPOSE_SECRETS;
      const result = compose([COMPOSE], composeEnv(others), 'config', '-q');
      expect(result.status, `docker-compose config without ${name}`).not.toBe(0);
      expect(result.stderr).toContain('.env.example');
    }
    // Each is documented for the operator.
    const example = readFileSync(join(ROOT, '.env.example'), 'utf8');
    for (const name of [...Object.keys(COMPOSE_SECRETS), 'AETHERIUM_METRICS_API_KEY']) {
      expect(example).toMatch(new RegExp(`^${name}=$`, 'm'));
    }
  });

  it('has the engines, the one-shot init, two replicas, two workers and the monitoring', () => {
    const services = asObj(base.services);
    for (const name of [
      'postgres',
      'redis',
      'etcd',
      'consul',
      'init',
      'cp-1',
      'cp-2',
      'worker-1',
      'worker-2',
      'prometheus',
      'grafana',
    ]) {
      expect(services, `service ${name}`).toHaveProperty(name);
    }
    expect(base.services.postgres.image).toMatch(/^postgres:16/);
    expect(base.services.redis.image).toMatch(/^redis:7/);
    expect(base.services.etcd.image).toMatch(/^quay\.io\/coreos\/etcd:/);
    expect(base.services.consul.profiles).toEqual(['consul']);
    // Everything else runs without a profile.
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'consul') expect(asObj(service).profiles, `profiles of ${name}`).toBeUndefined();
    }
  });

  it('binds every published port to 127.0.0.1, and publishes none of the engines or workers', () => {
    // As compose resolves them (variables in the ports filled in), both files alone and merged.
    const published = (files: string[]): Map<string, unknown[]> => {
      const result = compose(files, composeEnv(COMPOSE_SECRETS), 'config');
      expect(result.status, result.stderr).toBe(0);
      const rendered: Any = parse(result.stdout);
      return new Map(
        Object.entries(asObj(rendered.services))
          .map(([name, s]) => [name, (asObj(s).ports as unknown[] | undefined) ?? []] as const)
          .filter(([, ports]) => ports.length > 0),
      );
    };
    const alone = published([COMPOSE]);
    expect([...alone.keys()].sort()).toEqual(['cp-1', 'cp-2', 'grafana', 'prometheus']);
    // The dev override adds the engines, on loopback, for processes run from the checkout.
    const withDev = published([COMPOSE, COMPOSE_DEV]);
    expect([...withDev.keys()].sort()).toEqual([
      'consul',
      'cp-1',
      'cp-2',
      'etcd',
      'grafana',
      'postgres',
      'prometheus',
      'redis',
    ]);
    for (const [name, ports] of [...alone, ...withDev]) {
      for (const port of ports) {
        if (typeof port === 'string') expect(port, `a port of ${name}`).toMatch(/^127\.0\.0\.1:\d+:\d+(\/(tcp|udp))?$/);
        else expect(asObj(port).host_ip, `a port of ${name}`).toBe('127.0.0.1');
      }
    }
  });

  it('init makes the CA, the replicas certificate and one certificate per worker, each in its own volume', () => {
    const init = base.services.init;
    expect(init.build.target).toBe('server');
    const script = String((init.command as string[]).join('\n'));
    expect(script).toContain('tls ca create');
    expect(script).toMatch(
      /tls cert create --server[^\n]*\\\n[^\n]*--additional-dnsname cp-1 --additional-dnsname cp-2/,
    );
    expect(script).toContain('tls cert create --worker');
    expect(script).toMatch(/for w in worker-1 worker-2/);
    const volumes = (init.volumes as string[]).map((v) => v.split(':')[0]);
    expect(volumes.sort()).toEqual(['pki-ca', 'pki-server', 'pki-worker-1', 'pki-worker-2']);
    // Nothing but init mounts the CA key's volume.
    for (const [name, service] of Object.entries(asObj(base.services))) {
      if (name === 'init') continue;
      const mounts = ((asObj(service).volumes as string[] | undefined) ?? []).map((v) => v.split(':')[0]);
      expect(mounts, `volumes of ${name}`).not.toContain('pki-ca');
    }
  });

  it('runs the replicas on the shared engines, after init, with auth on and the agent port on every address', () => {
    for (const name of ['cp-1', 'cp-2']) {
      const cp = base.services[name];
      expect(cp.build.target).toBe('server');
      expect(cp.depends_on.init.condition).toBe('service_completed_successfully');
      for (const engine of ['postgres', 'redis', 'etcd'])
        expect(cp.depends_on[engine].condition).toBe('service_healthy');
      expect(cp.healthcheck.test.join(' ')).toContain('/health');
      const env = cp.environment;
      expect(env.AETHERIUM_STORE__KIND).toBe('postgres');
      expect(env.DATABASE_URL).toContain('${POSTGRES_PASSWORD:?');
      expect(env.AETHERIUM_QUEUE__KIND).toBe('redis');
      expect(env.AETHERIUM_EVENTS__KIND).toBe('redis');
      expect(env.AETHERIUM_API_GATEWAY__HOST).toBe('0.0.0.0');
      expect(env.AETHERIUM_API_GATEWAY__AUTH__ENABLED).toBe('true');
      expect(env.AETHERIUM_AGENT__HOST).toBe('0.0.0.0');
      expect(env.AETHERIUM_AGENT__TLS__CERT_FILE).toBe('/etc/aetherium/tls/server-aetherium.pem');
      expect(cp.volumes).toContain('pki-server:/etc/aetherium/tls:ro');
    }
  });

  it('runs the workers with /dev/kvm, their own certificate, both agent ports and a metrics token', () => {
    for (const id of ['worker-1', 'worker-2']) {
      const worker = base.services[id];
      expect(worker.build.target).toBe('worker');
      const kvm = worker.privileged === true || (worker.devices ?? []).some((d: string) => d.startsWith('/dev/kvm'));
      expect(kvm, `${id} can open /dev/kvm`).toBe(true);
      const env = worker.environment;
      expect(env.WORKER_ID).toBe(id);
      expect(parse(env.AETHERIUM_WORKER__SERVERS)).toEqual(['cp-1:4647', 'cp-2:4647']);
      expect(env.AETHERIUM_WORKER__TLS__CERT_FILE).toBe(`/etc/aetherium/tls/worker-${id}.pem`);
      expect(env.AETHERIUM_WORKER__TLS__KEY_FILE).toBe(`/etc/aetherium/tls/worker-${id}-key.pem`);
      expect(env.AETHERIUM_WORKER__METRICS__HOST).toBe('0.0.0.0');
      expect(env.AETHERIUM_WORKER__METRICS__TOKEN).toContain('${AETHERIUM_WORKER_METRICS_TOKEN:?');
      expect(worker.volumes).toContain(`pki-${id}:/etc/aetherium/tls:ro`);
      // A worker host runs untrusted code: it is not on the engines' network.
      expect(worker.networks).not.toContain('engines');
    }
    expect(base.networks.engines.internal).toBe(true);
  });

  it('mounts the Prometheus config and rules, and the Grafana provisioning and dashboards', () => {
    const prometheus = base.services.prometheus;
    expect(prometheus.volumes).toContain('./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro');
    expect(prometheus.volumes).toContain('./deploy/prometheus/rules:/etc/prometheus/rules:ro');
    const grafana = base.services.grafana;
    expect(grafana.volumes).toContain('./deploy/grafana/provisioning:/etc/grafana/provisioning:ro');
    expect(grafana.volumes.some((v: string) => v.startsWith('./deploy/grafana/dashboards:'))).toBe(true);
    expect(grafana.environment.GF_SECURITY_ADMIN_PASSWORD).toContain('${GRAFANA_ADMIN_PASSWORD:?');
  });

  it('scrapes the replicas with an API key and the workers with their token (prometheus.yml)', () => {
    const config: Any = parse(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8'));
    const jobs = new Map<string, Any>(config.scrape_configs.map((job: Any) => [job.job_name, job]));
    const cp = jobs.get('aetherium-control-plane');
    expect(cp.metrics_path).toBe('/metrics');
    expect(cp.static_configs[0].targets).toEqual(['cp-1:8080', 'cp-2:8080']);
    expect(cp.authorization.type).toBe('Bearer');
    const workers = jobs.get('aetherium-worker');
    expect(workers.static_configs[0].targets).toEqual(['worker-1:9464', 'worker-2:9464']);
    expect(workers.authorization.type).toBe('Bearer');
    // The files the compose entrypoint writes from the environment.
    const script = (base.services.prometheus.command as string[]).join('\n');
    for (const file of [cp.authorization.credentials_file, workers.authorization.credentials_file]) {
      expect(script).toContain(`> ${file}`);
    }
    expect(config.rule_files.every((f: string) => f.startsWith('rules/'))).toBe(true);
  });
});

// --- Dockerfile ------------------------------------------------------------------------------

interface Stage {
  name: string;
  from: string;
  instructions: { op: string; args: string }[];
}

function dockerStages(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const [, from = '', name = ''] = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args) ?? [];
      stages.push({ name, from, instructions: [] });
    } else {
      stages.at(-1)?.instructions.push({ op: op.toUpperCase(), args });
    }
  }
  return stages;
}

describe('Dockerfile', () => {
  const stages = dockerStages(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  const stage = (name: string): Stage => {
    const found = stages.find((s) => s.name === name);
    if (!found)
      throw new Error(`the Dockerfile has no stage ${name} (stages: ${stages.map((s) => s.name).join(', ')})`);
    return found;
  };
  /** An instruction's last value in a stage, following FROM to the stages it builds on. */
  const effective = (name: string, op: string): string | undefined => {
    const s = stage(name);
    const own = s.instructions.filter((i) => i.op === op).at(-1);
    if (own) return own.args;
    return stages.some((other) => other.name === s.from) ? effective(s.from, op) : undefined;
  };
  const runs = (name: string) =>
    stage(name)
      .instructions.filter((i) => i.op === 'RUN')
      .map((i) => i.args)
      .join('\n');

  it('builds in a node:20-bookworm-slim stage with npm ci and npm run build', () => {
    const build = stage('build');
    expect(build.from).toMatch(/node:20-bookworm-slim|\$\{NODE_IMAGE\}/);
    expect(readFileSync(join(ROOT, 'Dockerfile'), 'utf8')).toMatch(/^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    expect(runs('build')).toMatch(/npm ci\b/);
    expect(runs('build')).toContain('npm run build');
    expect(runs('prod-deps')).toMatch(/npm prune --omit=dev/);
  });

  it('has a server stage that runs as a numeric non-root user, with a health check', () => {
    const user = effective('server', 'USER');
    expect(user, 'USER of the server stage').toMatch(/^\d+(:\d+)?$/);
    expect(Number(user?.split(':')[0])).toBeGreaterThan(0);
    expect(effective('server', 'HEALTHCHECK')).toContain('/health');
    expect(effective('server', 'EXPOSE')?.split(/\s+/).sort()).toEqual(['4647', '8080']);
    expect(JSON.parse(effective('server', 'ENTRYPOINT') ?? 'null')).toEqual(['node', 'bin/aetherium.mjs']);
    expect(JSON.parse(effective('server', 'CMD') ?? 'null')).toEqual(['server']);
    // Only the runtime files: never the sources or the dev dependencies.
    const copies = stage('runtime')
      .instructions.filter((i) => i.op === 'COPY')
      .map((i) => i.args);
    const targets = copies.map((c) => c.split(/\s+/).at(-1)).sort();
    expect(targets).toEqual(
      [
        './bin',
        './config.example.yaml',
        './dist',
        './image',
        './migrations',
        './node_modules',
        './package.json',
        './web/dist',
      ].sort(),
    );
    expect(copies.find((c) => c.endsWith('./node_modules'))).toContain('--from=prod-deps');
  });

  it('has a worker stage with the VM tools that runs `worker`', () => {
    const tools = runs('worker');
    for (const pkg of [
      'qemu-system-x86',
      'qemu-utils',
      'bubblewrap',
      'e2fsprogs',
      'busybox-static',
      'cpio',
      'lz4',
      'iproute2',
    ]) {
      expect(tools, `the worker installs ${pkg}`).toMatch(new RegExp(`\\b${pkg}\\b`));
    }
    expect(JSON.parse(effective('worker', 'CMD') ?? 'null')).toEqual(['worker']);
    expect(effective('worker', 'USER')).toBe('0:0');
  });
});

// --- Kubernetes ------------------------------------------------------------------------------

type Model = new (data: unknown) => { validate(): void };
const MODELS: Record<string, Record<string, unknown>> = {
  v1: coreV1,
  'apps/v1': appsV1,
  'networking.k8s.io/v1': networkingV1,
  'policy/v1': policyV1,
};

/** The Prometheus Operator's CRDs have no model installed: their shape is checked by hand. */
function validateMonitor(obj: Any): void {
  const where = `${obj.kind} ${obj.metadata?.name}`;
  if (!['ServiceMonitor', 'PodMonitor'].includes(obj.kind)) throw new Error(`${where}: unknown kind`);
  if (!obj.metadata?.name) throw new Error(`${where}: no metadata.name`);
  if (!obj.spec?.selector?.matchLabels) throw new Error(`${where}: spec.selector.matchLabels is required here`);
  const endpoints = obj.kind === 'ServiceMonitor' ? obj.spec.endpoints : obj.spec.podMetricsEndpoints;
  if (!Array.isArray(endpoints) || endpoints.length === 0) throw new Error(`${where}: no endpoints`);
  for (const e of endpoints) {
    if (typeof e.port !== 'string') throw new Error(`${where}: an endpoint without a named port`);
    const creds = e.authorization?.credentials;
    if (e.authorization && (e.authorization.type !== 'Bearer' || !creds?.name || !creds?.key))
      throw new Error(`${where}: authorization needs type Bearer and credentials { name, key }`);
  }
}

function validate(obj: Any): void {
  if (obj.apiVersion === 'monitoring.coreos.com/v1') return validateMonitor(obj);
  const model = MODELS[obj.apiVersion]?.[obj.kind] as Model | undefined;
  if (!model) throw new Error(`no kubernetes-models model for ${obj.apiVersion} ${obj.kind}`);
  new model(obj).validate();
}

function kustomize(dir: string): Any[] {
  const result = run('kubectl', ['kustomize', join(ROOT, dir)]);
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed: ${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`kubectl kustomize ${dir}: ${doc.errors[0]?.message}`);
      return doc.toJS();
    })
    .filter((obj) => obj !== null);
}

function matches(selector: Any, labels: Record<string, string>): boolean {
  if (!selector) return false;
  if (selector.matchExpressions?.length) throw new Error('matchExpressions are not evaluated by this test');
  return Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
}

function find(objects: Any[], kind: string, name: string): Any {
  const found = objects.find((o) => o.kind === kind && o.metadata?.name === name);
  if (!found) throw new Error(`no ${kind} ${name} rendered`);
  return found;
}

/** A probe's port, resolved through the container's named ports. */
function probePort(container: Any, probe: Any): number {
  const port = probe.httpGet.port;
  if (typeof port === 'number') return port;
  const named = container.ports.find((p: Any) => p.name === port);
  if (!named) throw new Error(`probe port ${port} is not a port of ${container.name}`);
  return named.containerPort;
}

describe.each([
  { dir: 'deploy/kubernetes/base', replicas: 2, minAvailable: 1, secrets: true },
  { dir: 'deploy/kubernetes/overlays/production', replicas: 3, minAvailable: 2, secrets: false },
])('kubectl kustomize $dir', ({ dir, replicas, minAvailable, secrets }) => {
  let objects: Any[];
  let cp: Any;
  let cpPod: Any;
  let cpLabels: Record<string, string>;
  let ds: Any;
  let workerLabels: Record<string, string>;
  let rendered: Error | true | undefined;

  // Rendered once, before the first test; a failure (kubectl missing, say) fails every test
  // with its message rather than leaving them unrun.
  beforeEach(() => {
    if (rendered === undefined) {
      try {
        objects = kustomize(dir);
        cp = find(objects, 'Deployment', 'aetherium-control-plane');
        cpPod = cp.spec.template.spec;
        cpLabels = cp.spec.template.metadata.labels;
        ds = find(objects, 'DaemonSet', 'aetherium-worker');
        workerLabels = ds.spec.template.metadata.labels;
        rendered = true;
      } catch (err) {
        rendered = err as Error;
      }
    }
    if (rendered !== true) throw rendered;
  });

  it('renders only objects that validate against their schema', () => {
    expect(objects.length).toBeGreaterThan(10);
    const failures: string[] = [];
    for (const obj of objects) {
      try {
        validate(obj);
      } catch (err) {
        failures.push(`${obj.apiVersion} ${obj.kind} ${obj.metadata?.name}: ${(err as Error).message}`);
      }
    }
    expect(failures).toEqual([]);
    const namespace = find(objects, 'Namespace', 'aetherium');
    expect(namespace).toBeDefined();
    for (const obj of objects) {
      if (obj.kind !== 'Namespace')
        expect(obj.metadata.namespace, `${obj.kind} ${obj.metadata.name}`).toBe('aetherium');
    }
  });

  it('runs the control plane as non-root, read-only, without capabilities, probed on /health', () => {
    expect(cp.spec.replicas).toBe(replicas);
    expect(cpPod.securityContext.runAsNonRoot).toBe(true);
    expect(cpPod.securityContext.runAsUser).toBeGreaterThan(0);
    expect(cpPod.automountServiceAccountToken).toBe(false);
    const container = cpPod.containers.find((c: Any) => c.name === 'server');
    expect(container.args).toEqual(['server']);
    expect(container.securityContext.readOnlyRootFilesystem).toBe(true);
    expect(container.securityContext.allowPrivilegeEscalation).toBe(false);
    expect(container.securityContext.capabilities.drop).toEqual(['ALL']);
    expect(container.securityContext.privileged ?? false).toBe(false);
    for (const probe of ['readinessProbe', 'livenessProbe']) {
      expect(container[probe]?.httpGet?.path, probe).toBe('/health');
      expect(probePort(container, container[probe]), probe).toBe(8080);
    }
    expect(container.resources.requests.cpu).toBeDefined();
    expect(container.resources.requests.memory).toBeDefined();
    expect(container.resources.limits.memory).toBeDefined();
    // Settings from a ConfigMap and a Secret, the agent's certificates from a Secret volume.
    expect(container.envFrom.map((e: Any) => Object.keys(e)[0]).sort()).toEqual(['configMapRef', 'secretRef']);
    const tls = cpPod.volumes.find((v: Any) => v.secret?.secretName === 'aetherium-agent-tls');
    expect(tls).toBeDefined();
    expect(container.volumeMounts.find((m: Any) => m.name === tls.name)?.readOnly).toBe(true);
    const image = String(container.image);
    expect(image).toMatch(/aetherium\/server:\d+\.\d+\.\d+$/);
  });

  it('uses service accounts that mount no token', () => {
    for (const pod of [cpPod, ds.spec.template.spec]) {
      const account = find(objects, 'ServiceAccount', pod.serviceAccountName);
      expect(account.automountServiceAccountToken).toBe(false);
    }
  });

  it('exposes the API and the agent port, and the API through a TLS Ingress', () => {
    const service = find(objects, 'Service', 'aetherium-control-plane');
    expect(matches({ matchLabels: service.spec.selector }, cpLabels)).toBe(true);
    expect(service.spec.ports.map((p: Any) => [p.name, p.port])).toEqual([
      ['api', 8080],
      ['agent', 4647],
    ]);
    const ingress = find(objects, 'Ingress', 'aetherium-api');
    expect(ingress.spec.tls[0].secretName).toBeTruthy();
    const backend = ingress.spec.rules[0].http.paths[0].backend.service;
    expect(backend.name).toBe(service.metadata.name);
    expect(backend.port.name ?? backend.port.number).toSatisfy((p: string | number) => p === 'api' || p === 8080);
  });

  it('keeps a replica up through disruptions', () => {
    const pdbs = objects.filter((o) => o.kind === 'PodDisruptionBudget' && matches(o.spec.selector, cpLabels));
    expect(pdbs).toHaveLength(1);
    expect(pdbs[0].spec.minAvailable).toBe(minAvailable);
  });

  it('runs a privileged worker on labelled nodes with /dev/kvm and a state dir from the host', () => {
    const pod = ds.spec.template.spec;
    expect(pod.nodeSelector).toEqual({ 'aetherium.dev/worker': 'true' });
    const container = pod.containers.find((c: Any) => c.name === 'worker');
    expect(container.args).toEqual(['worker']);
    expect(container.securityContext.privileged).toBe(true);
    const hostPathMount = (path: string): Any => {
      const volume = pod.volumes.find((v: Any) => v.hostPath?.path === path);
      expect(volume, `a hostPath volume for ${path}`).toBeDefined();
      return container.volumeMounts.find((m: Any) => m.name === volume.name);
    };
    expect(hostPathMount('/dev/kvm')?.mountPath).toBe('/dev/kvm');
    expect(hostPathMount('/var/lib/aetherium')?.mountPath).toBe('/var/lib/aetherium');
    expect(container.ports).toContainEqual(expect.objectContaining({ name: 'metrics', containerPort: 9464 }));
    expect(container.env.find((e: Any) => e.name === 'WORKER_ID')?.valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
  });

  it('lets the worker pods into the control plane on the agent port 4647 only', () => {
    const policies = objects.filter((o) => o.kind === 'NetworkPolicy' && matches(o.spec.podSelector, cpLabels));
    const ingressPolicies = policies.filter((p) => (p.spec.policyTypes ?? ['Ingress']).includes('Ingress'));
    expect(ingressPolicies.length).toBeGreaterThan(0);
    // A rule admits the workers when it has no `from` (everyone) or a peer selecting them in this
    // namespace (a podSelector without a namespaceSelector).
    const admitsWorkers = (rule: Any): boolean =>
      !rule.from ||
      rule.from.some(
        (peer: Any) => !peer.namespaceSelector && !peer.ipBlock && matches(peer.podSelector, workerLabels),
      );
    const rules = ingressPolicies.flatMap((p) => p.spec.ingress ?? []).filter(admitsWorkers);
    expect(rules.length).toBeGreaterThan(0);
    for (const rule of rules) expect(rule.ports).toEqual([{ protocol: 'TCP', port: 4647 }]);
    // The API only from the ingress controller's namespace (and Prometheus'), never from all.
    const apiRules = ingressPolicies
      .flatMap((p) => p.spec.ingress ?? [])
      .filter((r: Any) => r.ports?.some((port: Any) => port.port === 8080));
    expect(apiRules.length).toBeGreaterThan(0);
    for (const rule of apiRules) {
      expect(rule.from?.length).toBeGreaterThan(0);
      for (const peer of rule.from) expect(peer.namespaceSelector?.matchLabels).toBeDefined();
    }
    expect(
      apiRules.some((r: Any) =>
        r.from.some(
          (peer: Any) => peer.namespaceSelector.matchLabels['kubernetes.io/metadata.name'] === 'ingress-nginx',
        ),
      ),
    ).toBe(true);
  });

  it('lets the workers out only to the agent port and DNS', () => {
    const policies = objects.filter(
      (o) =>
        o.kind === 'NetworkPolicy' &&
        matches(o.spec.podSelector, workerLabels) &&
        o.spec.policyTypes?.includes('Egress'),
    );
    expect(policies).toHaveLength(1);
    const egress = policies[0].spec.egress;
    const ports = egress.map((rule: Any) =>
      rule.ports
        .map((p: Any) => `${p.protocol}/${p.port}`)
        .sort()
        .join(','),
    );
    expect(ports.sort()).toEqual(['TCP/4647', 'TCP/53,UDP/53']);
    const toControlPlane = egress.find((rule: Any) => rule.ports.some((p: Any) => p.port === 4647));
    expect(toControlPlane.to.every((peer: Any) => matches(peer.podSelector, cpLabels))).toBe(true);
  });

  it('has monitors for the control plane Service and the worker pods', () => {
    const service = find(objects, 'Service', 'aetherium-control-plane');
    const sm = find(objects, 'ServiceMonitor', 'aetherium-control-plane');
    expect(sm.apiVersion).toBe('monitoring.coreos.com/v1');
    expect(matches(sm.spec.selector, service.metadata.labels)).toBe(true);
    expect(
      objects.filter((o) => o.kind === 'Service' && matches(sm.spec.selector, o.metadata.labels ?? {})),
    ).toHaveLength(1);
    const endpoint = sm.spec.endpoints[0];
    expect(service.spec.ports.find((p: Any) => p.name === endpoint.port)?.port).toBe(8080);
    expect(endpoint.path).toBe('/metrics');
    const pm = find(objects, 'PodMonitor', 'aetherium-worker');
    expect(matches(pm.spec.selector, workerLabels)).toBe(true);
    expect(matches(pm.spec.selector, cpLabels)).toBe(false);
    expect(pm.spec.podMetricsEndpoints[0].port).toBe('metrics');
  });

  it(secrets ? 'ships the Secrets as marked templates' : 'applies no placeholder Secret', () => {
    const found = objects.filter((o) => o.kind === 'Secret');
    if (secrets) {
      expect(found.map((s) => s.metadata.name).sort()).toEqual([
        'aetherium-agent-tls',
        'aetherium-control-plane',
        'aetherium-metrics-scrape',
        'aetherium-worker',
      ]);
      for (const secret of found) {
        for (const [key, value] of Object.entries(asObj(secret.stringData))) {
          expect(String(value), `${secret.metadata.name} ${key}`).toMatch(/^REPLACE/);
        }
      }
    } else {
      expect(found).toEqual([]);
    }
  });
});
