/**
 * The control plane: API, scheduler loop, reaper, drain loop, registry watch and event fan-out over
 * the shared engines. It keeps no state of its own, so any number of replicas can run against one
 * store and bus.
 *
 *   stopped ──start()──► starting ──► running ──stop()──► stopping ──► stopped
 *
 * Its parts start in order (events, registry watch, scheduler, reaper, drains, HTTP last) and stop
 * in reverse, so the API stops taking requests before the loops behind it stop.
 */
import type { RateLimitPluginOptions } from '@fastify/rate-limit';
import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.ts';
import type { Tracing } from '../observability/tracing.ts';
import type { EventType } from '../domain/index.ts';
import { lifecycle, Service } from '../lifecycle/service.ts';
import { ServiceGroup } from '../lifecycle/service-group.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { Logger } from '../ports/logger.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import { buildApp } from './app.ts';
import { DrainLoop } from './drain-loop.ts';
import { EventHub } from './events/event-hub.ts';
import { checkHealth, type HealthProbe, type HealthReport } from './health.ts';
import { Ledger } from './ledger/ledger.ts';
import { WorkerLedger } from './ledger/worker-ledger.ts';
import { Reaper } from './reaper.ts';
import { RegistryWatcher } from './registry-watcher.ts';
import { SchedulerLoop } from './scheduler-loop.ts';
import { TaskService } from './services/task-service.ts';
import { TokenService } from './services/token-service.ts';
import { JoinTokenService } from './services/join-token-service.ts';
import { Authenticator } from './auth/authenticator.ts';
import { JwtVerifier } from './auth/jwt.ts';
import { OidcClient } from './auth/oidc.ts';
import { ControlPlaneMetrics } from './metrics/control-plane-metrics.ts';
import { timedPort } from '../observability/timed-port.ts';
import { VmService } from './services/vm-service.ts';
import { WorkerService } from './services/worker-service.ts';
import { historyCompactor } from './metrics/history-compactor.ts';
import type { Periodic } from '../lifecycle/periodic.ts';
import { DirectWorkerLink } from './worker-link/direct-worker-link.ts';
import { AgentServer, type AgentServerOptions } from './agent/agent-server.ts';
import type { WorkerLogs } from './agent/log-relay.ts';
import type { NodeCertificateAuthority } from '../ports/node-ca.ts';

/** Events after which a pending task may fit: capacity freed, a worker arrived, a task handed back. */
const WAKING_EVENTS: ReadonlySet<EventType> = new Set<EventType>([
  'vm.deleted',
  'worker.joined',
  'worker.activated',
  'task.failed',
  'task.completed',
  'task.requeued',
  'task.created',
]);

export interface ControlPlaneDeps {
  store: Store;
  queue: TaskQueue;
  events: EventBus;
  registry: ServiceRegistry;
  channels: ExecChannels;
  log: Logger;
  mode: string;
  version: string;
  /** Extra warnings for /health, e.g. an unisolated driver in use. */
  warnings?: () => string[];
  probes?: HealthProbe[];
  /** An ioredis client for the rate limits shared by every replica (cluster mode). */
  rateLimitRedis?: unknown;
  /** The agent CA's fingerprint (`sha256:<hex>`), pinned by join tokens; none: no join tokens. */
  agentCa?: { fingerprint: string } | null;
  /**
   * The agent port (cluster mode): where workers connect over mutual TLS. `ca` signs joining and
   * renewing workers' certificates; null when this replica holds no CA key.
   */
  agent?: { options: AgentServerOptions; ca: NodeCertificateAuthority | null; certTtlMs: number } | null;
  /** Worker logs without an agent port (`aetherium dev`: the in-process worker's). */
  workerLogs?: WorkerLogs;
  /** The built web UI to serve at `/` (config `ui.dir` wins); null: none. */
  uiDir?: string | null;
  /** A span per API request (telemetry.otlp); default: ids only. */
  tracing?: Tracing;
}

/** The engines with every round trip timed (`aetherium_engine_request_duration_seconds`). */
function timedEngines(deps: ControlPlaneDeps, metrics: ControlPlaneMetrics): ControlPlaneDeps {
  const timed = <T extends object>(engine: string, port: T, skip?: ReadonlySet<string>) =>
    timedPort(port, (operation, seconds, failed) => metrics.engineCall(engine, operation, seconds, failed), skip);
  return {
    ...deps,
    store: timed('store', deps.store, new Set(['close', 'migrate'])),
    queue: timed('queue', deps.queue, new Set(['close'])),
    events: timed('events', deps.events, new Set(['close'])),
    registry: timed('registry', deps.registry, new Set(['close'])),
  };
}

export class ControlPlane extends Service {
  readonly ledger: Ledger;
  readonly workerLedger: WorkerLedger;
  readonly scheduler: SchedulerLoop;
  readonly reaper: Reaper;
  readonly drains: DrainLoop;
  /** Downsamples and prunes the worker metrics history (metrics.history). */
  readonly history: Periodic;
  readonly hub: EventHub | null;
  readonly watcher: RegistryWatcher;
  readonly vms: VmService;
  readonly tasks: TaskService;
  readonly tokens: TokenService;
  readonly joinTokens: JoinTokenService;
  /** From `deps.agentCa`; may be set later, by whoever loads the CA: join-token creates read it each time. */
  agentCa: { fingerprint: string } | null;
  readonly workers: WorkerService;
  /** The agent port; null in `aetherium dev`, whose worker is in-process. */
  readonly agentServer: AgentServer | null;
  /** Null when authentication is off (allowed on a loopback listener only). */
  readonly authenticator: Authenticator | null;
  /** Sign-in through an OIDC provider for the UI; null when not configured. */
  readonly oidc: OidcClient | null;
  /** Prometheus metrics of this replica (`GET /metrics`). */
  readonly metrics: ControlPlaneMetrics;
  private app: FastifyInstance | null = null;
  private parts: ServiceGroup | null = null;
  private listen = true;
  /** Where the API listens once started with `listen`. */
  address: string | null = null;

  private readonly deps: ControlPlaneDeps;

  constructor(
    private readonly config: Config,
    given: ControlPlaneDeps,
  ) {
    super('control plane');
    // The metrics read the raw store at a scrape; everything else goes through the timed engines.
    this.metrics = new ControlPlaneMetrics({
      store: given.store,
      eventClients: () => this.hub?.clients ?? null,
      health: () => this.health(),
      version: given.version,
      mode: given.mode,
    });
    const deps = timedEngines(given, this.metrics);
    this.deps = deps;
    const log = deps.log.child({ component: 'control-plane' });
    const s = config.scheduler;
    this.ledger = new Ledger(deps.store, deps.events, this.metrics);
    this.workerLedger = new WorkerLedger(deps.store, deps.events);
    const schedulerOptions = {
      intervalMs: s.interval,
      batchSize: s.batch_size,
      strategy: s.strategy,
      maxCreatesInFlight: s.max_creates_in_flight_per_worker,
      redeliverAfterMs: s.redeliver_after,
    };
    this.scheduler = new SchedulerLoop(
      this.ledger,
      deps.queue,
      schedulerOptions,
      log.child({ component: 'scheduler' }),
      (seconds) => this.metrics.schedulerPass(seconds),
    );
    const wake = () => this.scheduler.trigger();
    const reapEvery = Math.max(1000, Math.floor(config.worker.heartbeat_interval / 2));
    this.reaper = new Reaper(
      this.ledger,
      this.workerLedger,
      reapEvery,
      wake,
      log.child({ component: 'reaper' }),
      config.worker.lost_after,
    );
    const drainDeps = {
      ledger: this.ledger,
      workers: this.workerLedger,
      queue: deps.queue,
      log: log.child({ component: 'drain' }),
    };
    this.drains = new DrainLoop(drainDeps, 1000, drainDeps.log);
    this.history = historyCompactor(deps.store, config.metrics.history, log.child({ component: 'metrics-history' }));
    this.vms = new VmService(this.ledger, deps.queue, wake);
    this.tasks = new TaskService(this.ledger, deps.queue, deps.events);
    this.tokens = new TokenService(deps.store);
    this.joinTokens = new JoinTokenService(deps.store);
    this.agentCa = deps.agentCa ?? null;
    const auth = config.api_gateway.auth;
    const jwt =
      auth.jwt.jwks_url || auth.jwt.secret
        ? new JwtVerifier({ ...auth.jwt, clock_skew_seconds: auth.jwt.clock_skew / 1000 })
        : null;
    this.authenticator = auth.enabled ? new Authenticator(deps.store, jwt, log.child({ component: 'auth' })) : null;
    const { oidc } = auth;
    this.oidc =
      auth.enabled && oidc.issuer && oidc.client_id
        ? new OidcClient({ ...oidc, issuer: oidc.issuer, client_id: oidc.client_id }, jwt)
        : null;
    this.workers = new WorkerService(drainDeps, wake);
    const events = config.events;
    this.hub = config.api_gateway.enable_websocket
      ? new EventHub(deps.events, {
          maxBufferedBytes: events.max_buffered_bytes,
          pingIntervalMs: events.ping_interval,
          positionIntervalMs: events.position_interval,
          observer: {
            delivered: (lagSeconds) => this.metrics.eventDelivered(lagSeconds),
            dropped: (reason) => this.metrics.eventStreamDropped(reason),
          },
        })
      : null;
    const agent = deps.agent ?? null;
    this.agentServer = agent
      ? new AgentServer(agent.options, {
          link: this.workerLink(),
          store: deps.store,
          queue: deps.queue,
          channels: deps.channels,
          ca: agent.ca,
          certTtlMs: agent.certTtlMs,
          joins: this.joinTokens,
          log,
        })
      : null;
    if (agent?.ca && !this.agentCa) this.agentCa = { fingerprint: agent.ca.fingerprint };
    this.watcher = new RegistryWatcher(
      deps.registry,
      this.workerLedger,
      wake,
      log.child({ component: 'registry-watch' }),
    );
  }

  /** The link a worker in this process (or, until the agent channel, on this host) talks through. */
  workerLink(): DirectWorkerLink {
    const log = this.deps.log.child({ component: 'worker-link' });
    return new DirectWorkerLink({
      ledger: this.ledger,
      workers: this.workerLedger,
      queue: this.deps.queue,
      registry: this.deps.registry,
      log,
    });
  }

  health(): Promise<HealthReport> {
    const { store, queue, events, registry } = this.deps;
    const probes: HealthProbe[] = [
      { name: 'store', kind: store.kind, check: () => store.ping() },
      { name: 'queue', kind: queue.kind, check: () => queue.ping() },
      { name: 'events', kind: events.kind, check: async () => void (await events.replay(Number.MAX_SAFE_INTEGER, 1)) },
      { name: 'registry', kind: registry.kind, check: async () => void (await registry.listWorkers()) },
      ...(this.deps.probes ?? []),
    ];
    return checkHealth(this.deps.mode, this.deps.version, probes, this.deps.warnings ?? (() => []));
  }

  /** The HTTP application, once `start()` has built it. */
  get http(): FastifyInstance {
    if (!this.app) throw new Error('the control plane has not been started');
    return this.app;
  }

  async buildHttp(): Promise<FastifyInstance> {
    if (this.app) return this.app;
    const gateway = this.config.api_gateway;
    this.app = await buildApp(
      {
        vms: this.vms,
        tasks: this.tasks,
        tokens: this.tokens,
        joinTokens: this.joinTokens,
        agentCa: () => this.agentCa,
        workerLogs: () => this.agentServer?.logs ?? this.deps.workerLogs ?? null,
        audit: (filter) => this.deps.store.listAudit(filter),
        workers: this.workers,
        scheduler: this.scheduler,
        events: this.deps.events,
        channels: this.deps.channels,
        health: () => this.health(),
        execWaitMs: gateway.exec_wait,
        hub: this.hub,
      },
      {
        logger: this.deps.log.child({ component: 'http' }),
        auth: { authenticator: this.authenticator, allowedOrigins: gateway.cors_origins },
        oidc: this.oidc,
        metrics: this.metrics,
        ...(this.deps.tracing ? { tracing: this.deps.tracing } : {}),
        audit: { store: this.deps.store },
        browser: {
          corsOrigins: gateway.cors_origins,
          // Dev mode, and any listener without authentication, answers only its own Host names: a
          // page on another domain that resolves to 127.0.0.1 must not act as the local admin.
          allowedHosts: this.deps.mode === 'dev' || !gateway.auth.enabled ? gateway.allowed_hosts : null,
        },
        rateLimit: {
          ...gateway.rate_limit,
          windowMs: gateway.rate_limit.window,
          ...(this.deps.rateLimitRedis ? { redis: this.deps.rateLimitRedis as RateLimitPluginOptions['redis'] } : {}),
        },
        trustProxy: gateway.trust_proxy,
        ...(gateway.tls.cert_file && gateway.tls.key_file
          ? { https: { cert: readFileSync(gateway.tls.cert_file), key: readFileSync(gateway.tls.key_file) } }
          : {}),
        version: this.deps.version,
        ...(this.config.ui.enabled
          ? {
              ui: {
                dir: this.config.ui.dir ?? this.deps.uiDir ?? null,
                basePath: this.config.ui.base_path,
                trustForwardedPrefix: gateway.trust_proxy !== false,
              },
            }
          : {}),
      },
    );
    return this.app;
  }

  /** Starts the loops and, unless `listen` is false, the HTTP server. Returns the bound address. */
  async startAndListen(listen = true): Promise<string | null> {
    this.listen = listen;
    await this.start();
    return this.address;
  }

  protected async onStart(): Promise<void> {
    const app = await this.buildHttp();
    const gateway = this.config.api_gateway;
    // Freed capacity or a new worker means pending tasks may fit now.
    let unsubscribe: (() => void) | null = null;
    const wakeOnEvents = lifecycle(
      'wake on events',
      () => {
        unsubscribe = this.deps.events.subscribe((event) => {
          if (WAKING_EVENTS.has(event.type)) this.scheduler.trigger();
          this.metrics.observe(event);
        });
      },
      () => unsubscribe?.(),
    );
    const http = lifecycle(
      'http',
      async () => {
        if (this.listen) this.address = await app.listen({ host: gateway.host, port: gateway.port });
        else await app.ready();
      },
      () => app.close(),
    );
    const hub = this.hub;
    const members = [
      ...(hub
        ? [
            lifecycle(
              'event hub',
              () => hub.start(),
              () => hub.stop(),
            ),
          ]
        : []),
      wakeOnEvents,
      this.watcher,
      this.scheduler,
      this.reaper,
      this.drains,
      this.history,
      ...(this.agentServer ? [this.agentServer] : []),
      http,
    ];
    this.parts = new ServiceGroup('control plane', members, (member, err) =>
      this.deps.log.warn({ member, err }, 'stopping a part of the control plane failed'),
    );
    await this.parts.start();
  }

  protected async onStop(): Promise<void> {
    await this.parts?.stop();
    this.parts = null;
    // The worker read model stops following events.
    this.workers.close();
  }
}
