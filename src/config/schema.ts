/**
 * The configuration, validated once at start. Every key is documented in config.example.yaml.
 * Durations are strings (`10s`) turned into milliseconds here, so the rest of the code sees numbers.
 */
import * as z from 'zod';
import { WORKER_ID_PATTERN } from '../domain/node-identity.ts';
import { parseDuration } from './duration.ts';

const duration = (fallback: string) =>
  z
    .union([z.string(), z.number()])
    .default(fallback)
    .transform((value, ctx) => {
      const ms = typeof value === 'number' ? value * 1000 : parseDuration(value);
      if (ms === null || ms <= 0) {
        ctx.addIssue({
          code: 'custom',
          message: `expected a duration such as "500ms", "10s", "1m" or "1h", got ${JSON.stringify(value)}`,
        });
        return z.NEVER;
      }
      return ms;
    });

const labels = z.record(z.string(), z.string()).default({});

export const DRIVERS = ['firecracker', 'qemu', 'sandbox', 'process'] as const;

const storeSchema = z
  .object({
    kind: z.enum(['pglite', 'postgres']).default('pglite'),
    pglite: z.object({ data_dir: z.string().min(1).default('.aetherium/pglite') }).prefault({}),
    postgres: z
      .object({ url: z.string().min(1).default('postgres://aetherium:aetherium@127.0.0.1:5432/aetherium') })
      .prefault({}),
  })
  .prefault({});

/** PEM files for a TLS client: the CA to trust (null: the system's CAs) and a client certificate. */
const tlsFiles = z
  .object({
    ca_file: z.string().min(1).nullable().default(null),
    cert_file: z.string().min(1).nullable().default(null),
    key_file: z.string().min(1).nullable().default(null),
  })
  .prefault({})
  .refine((tls) => (tls.cert_file === null) === (tls.key_file === null), {
    message: 'set both cert_file and key_file (the client certificate and its key), or neither',
  });

const anyTlsFile = (tls: z.output<typeof tlsFiles>) =>
  tls.ca_file !== null || tls.cert_file !== null || tls.key_file !== null;

/**
 * `rediss://` turns TLS on; `tls` only says what to trust and which certificate to show. Files on
 * a `redis://` URL are an error rather than an implied TLS: the URL alone must tell how the
 * connection goes, or an operator reading it would be misled.
 */
const redis = z
  .object({ url: z.string().min(1).default('redis://127.0.0.1:6379'), tls: tlsFiles })
  .refine((r) => !anyTlsFile(r.tls) || /^rediss:\/\//i.test(r.url), {
    path: ['tls'],
    message: 'TLS files are set but the url is not rediss://: use a rediss:// url to connect over TLS',
  })
  .prefault({});

const discoverySchema = z
  .object({
    provider: z.enum(['builtin', 'consul', 'etcd']).default('builtin'),
    consul: z
      .object({
        address: z.string().default('127.0.0.1:8500'),
        scheme: z.enum(['http', 'https']).default('http'),
        datacenter: z.string().default('dc1'),
        token: z.string().default(''),
        /** With scheme https: the CA that signed the agent's certificate (null: the system's CAs). */
        ca_file: z.string().min(1).nullable().default(null),
        /** A client certificate, when the agent verifies incoming connections (verify_incoming). */
        cert_file: z.string().min(1).nullable().default(null),
        key_file: z.string().min(1).nullable().default(null),
        service_name: z.string().default('aetherium-worker'),
        health_check_interval: duration('10s'),
        deregister_critical_service_after: duration('1m'),
      })
      .prefault({})
      .superRefine((consul, ctx) => {
        if ((consul.cert_file === null) !== (consul.key_file === null))
          ctx.addIssue({ code: 'custom', path: ['cert_file'], message: 'set both cert_file and key_file, or neither' });
        // A full URL in `address` wins over `scheme` (as in the client).
        const full = /^[a-z][a-z0-9+.-]*:\/\//i.exec(consul.address);
        const https = full ? /^https:/i.test(consul.address) : consul.scheme === 'https';
        if (!https && anyTlsFile(consul))
          ctx.addIssue({
            code: 'custom',
            path: ['scheme'],
            message: 'ca_file, cert_file and key_file are set, but Consul is reached over http: set scheme: https',
          });
      }),
    etcd: z
      .object({
        endpoints: z.array(z.string()).default(['http://127.0.0.1:2379']),
        prefix: z.string().default('/aetherium/workers/'),
        /** For https:// endpoints: the CA and the client certificate etcd's --client-cert-auth wants. */
        tls: tlsFiles,
      })
      .prefault({})
      .refine((e) => !anyTlsFile(e.tls) || e.endpoints.every((url) => /^https:\/\//i.test(url)), {
        path: ['tls'],
        message: 'TLS files are set, so every endpoint must be an https:// url',
      }),
  })
  .prefault({});

const workerSchema = z
  .object({
    id: z.string().regex(WORKER_ID_PATTERN, 'letters, digits, ".", "_" and "-", at most 63').optional(),
    hostname: z.string().optional(),
    address: z.string().optional(),
    zone: z.string().default('default'),
    labels,
    capabilities: z.array(z.string()).default([]),
    drivers: z
      .object({
        /** Empty: every driver this host can run. */
        enabled: z.array(z.enum(DRIVERS)).default([]),
        /** The unisolated `process` driver; `aetherium dev` falls back to it when bubblewrap is missing. */
        allow_process: z.boolean().default(false),
        /** null: .aetherium/workers/<worker id>, so that workers on one host never share VM state. */
        state_dir: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
    resources: z
      .object({
        /** 0 means: detect from the host. */
        cpu_cores: z.number().int().min(0).default(0),
        memory_mb: z.number().int().min(0).default(0),
        disk_gb: z.number().int().min(0).default(0),
        max_vms: z.number().int().min(1).default(100),
      })
      .prefault({}),
    heartbeat_interval: duration('10s'),
    /** How long after the last heartbeat the worker counts as gone. Must exceed the interval. */
    ttl: duration('30s'),
    /**
     * Read by the control plane: how long the VMs of a worker that went offline stay `unknown`
     * (they go back to `running` if it returns with them) before they are `lost` and their capacity
     * is returned. Like Nomad's `max_client_disconnect`; counted from the worker's last heartbeat.
     */
    lost_after: duration('5m'),
    concurrency: z.number().int().min(1).max(256).default(8),
    /** On SIGTERM a worker drains: its VMs get this long to finish before they are deleted. */
    drain_deadline: duration('5m'),
    metrics_interval: duration('30s'),
    /**
     * The worker's own Prometheus metrics (docs/METRICS.md), on a listener of its own: loopback
     * unless told otherwise. With a token, a scrape must send `Authorization: Bearer <token>`.
     */
    metrics: z
      .object({
        enabled: z.boolean().default(true),
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(9464),
        token: z.string().min(16).nullable().default(null),
      })
      .prefault({}),
    /**
     * The control plane's agent ports (`host:port`), tried in turn: the only addresses a worker
     * needs. A worker in a cluster holds no database, queue or registry credentials.
     */
    servers: z.array(z.string().min(1)).default([]),
    /** The worker's identity on the agent channel: the cluster CA, its certificate and key. */
    tls: z
      .object({
        ca_file: z.string().min(1).nullable().default(null),
        cert_file: z.string().min(1).nullable().default(null),
        key_file: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
    /** A join token (`aetherium tokens create --join`): the worker gets its certificate with it. */
    join_token: z.string().min(1).nullable().default(null),
    /** Where a joined worker keeps the key it made and the certificate it was given (default: state dir). */
    identity_dir: z.string().min(1).nullable().default(null),
  })
  .prefault({});

const agentSchema = z
  .object({
    /**
     * The agent port: workers connect here over mutual TLS (like Nomad's RPC port). Loopback unless
     * told otherwise; a cluster sets it to an address the workers can reach.
     */
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(4647),
    tls: z
      .object({
        /** The cluster CA that signs worker certificates: only its certificates are accepted. */
        ca_file: z.string().min(1).nullable().default(null),
        /** This replica's server certificate (`aetherium tls cert create --server`). */
        cert_file: z.string().min(1).nullable().default(null),
        key_file: z.string().min(1).nullable().default(null),
        /** The CA's key: needed only to sign certificates for joining and renewing workers. */
        ca_key_file: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
    /** Lifetime of the certificates issued to joining workers; they renew at two thirds of it. */
    cert_ttl: duration('24h'),
  })
  .prefault({});

export const configSchema = z
  .object({
    store: storeSchema,
    queue: z.object({ kind: z.enum(['memory', 'redis']).default('memory'), redis }).prefault({}),
    events: z
      .object({
        kind: z.enum(['memory', 'redis']).default('memory'),
        redis,
        /** How many past events a reconnecting client can resume from. */
        retention: z.number().int().min(100).default(10_000),
        /** WebSocket clients are pinged this often; one that misses a pong is dropped. */
        ping_interval: duration('15s'),
        /** A client whose filter skipped events is told its position (`{ type: 'position' }`) at most this often. */
        position_interval: duration('5s'),
        /** A client whose unsent backlog passes this many bytes is cut off (close code 4008). */
        max_buffered_bytes: z
          .number()
          .int()
          .min(64 * 1024)
          .default(4 * 1024 * 1024),
      })
      .prefault({}),
    discovery: discoverySchema,
    worker: workerSchema,
    agent: agentSchema,
    api_gateway: z
      .object({
        /** Loopback unless told otherwise: a control plane runs commands in VMs for whoever reaches it. */
        host: z.string().default('127.0.0.1'),
        port: z.number().int().min(0).max(65535).default(8080),
        enable_websocket: z.boolean().default(true),
        /** TLS on the API: a PEM certificate (chain) and its key. Both or neither. */
        tls: z
          .object({
            cert_file: z.string().min(1).nullable().default(null),
            key_file: z.string().min(1).nullable().default(null),
          })
          .prefault({})
          .refine((tls) => (tls.cert_file === null) === (tls.key_file === null), {
            message: 'set both cert_file and key_file, or neither',
          }),
        /** Behind a load balancer: trust X-Forwarded-For from it (true, or the proxies' addresses). */
        trust_proxy: z.union([z.boolean(), z.array(z.string().min(1))]).default(false),
        /** `aetherium dev` answers only loopback Host names, and these (DNS rebinding protection). */
        allowed_hosts: z.array(z.string().min(1)).default([]),
        /** Web pages allowed to call the API and open its WebSockets (CORS and Origin checks). */
        cors_origins: z.array(z.string().url()).default([]),
        auth: z
          .object({
            /** Off only for a loopback listener; `aetherium server` refuses anything else without it. */
            enabled: z.boolean().default(true),
            jwt: z
              .object({
                jwks_url: z.string().url().nullable().default(null),
                /** A shared HS256 secret for small setups, instead of a JWKS. */
                secret: z.string().min(32).nullable().default(null),
                issuer: z.string().nullable().default(null),
                audience: z.string().nullable().default(null),
                /** The claim that carries the role (a dotted path; an array claim takes its highest role). */
                role_claim: z.string().min(1).default('role'),
                clock_skew: duration('30s'),
              })
              .prefault({}),
            /**
             * Sign-in through an OIDC identity provider for the web UI (authorization code with PKCE;
             * the control plane exchanges the code, so a client secret never reaches a browser). The
             * token it hands the UI is verified like any bearer JWT: set `jwt` for this issuer too.
             */
            oidc: z
              .object({
                issuer: z.string().url().nullable().default(null),
                client_id: z.string().min(1).nullable().default(null),
                /** For a confidential client; kept on the server, never sent to a browser. */
                client_secret: z.string().min(1).nullable().default(null),
                scopes: z.string().min(1).default('openid profile email'),
                /** Which token of the answer the UI signs in with: the ID token (audience: the client id) or the access token. */
                token: z.enum(['id_token', 'access_token']).default('id_token'),
                /** The name on the sign-in button; null: the issuer's host. */
                display_name: z.string().min(1).max(64).nullable().default(null),
              })
              .prefault({}),
          })
          .prefault({}),
        rate_limit: z
          .object({
            enabled: z.boolean().default(true),
            max: z.number().int().min(1).default(1200),
            window: duration('1m'),
          })
          .prefault({}),
        /** How long `POST /vms/{id}/exec` waits for the command before answering 202 with its task. */
        exec_wait: duration('10m'),
      })
      .prefault({}),
    ui: z
      .object({
        /** Serve the web UI at `/` (the API is the same either way). */
        enabled: z.boolean().default(true),
        /**
         * The path a reverse proxy serves the control plane under when it strips it (`/aetherium`).
         * Null: a trusted proxy's X-Forwarded-Prefix (api_gateway.trust_proxy), else the root.
         */
        base_path: z
          .string()
          .regex(/^(\/[A-Za-z0-9._~-]+)+$/, 'a path such as /aetherium: "/"-separated segments, no trailing "/"')
          .nullable()
          .default(null),
        /** The built UI; null: the package's web/dist (built by `npm ci` and `npm run build`). */
        dir: z.string().min(1).nullable().default(null),
      })
      .prefault({}),
    scheduler: z
      .object({
        strategy: z.enum(['binpack', 'spread']).default('binpack'),
        interval: duration('1s'),
        batch_size: z.number().int().min(1).default(100),
        max_creates_in_flight_per_worker: z.number().int().min(1).default(3),
        /** A scheduled task whose queue message may have been lost is sent again after this long. */
        redeliver_after: duration('30s'),
      })
      .prefault({}),
    metrics: z
      .object({
        /** The history of worker metrics behind `GET /workers/{id}/metrics?since=&step=`. */
        history: z
          .object({
            /** Raw samples (one per worker.metrics_interval) are kept this long. */
            raw_retention: duration('24h'),
            /** Then one average per downsample_step is kept this long. */
            downsampled_retention: duration('30d'),
            downsample_step: duration('5m'),
            /** How often a control plane downsamples and prunes (every replica may; it is idempotent). */
            compact_interval: duration('5m'),
          })
          .refine((h) => h.downsample_step >= 1000, {
            message: 'downsample_step must be at least 1s',
            path: ['downsample_step'],
          })
          .refine((h) => h.downsampled_retention >= h.raw_retention, {
            message: 'downsampled_retention must be at least raw_retention (the history outlives the raw samples)',
            path: ['downsampled_retention'],
          })
          .prefault({}),
      })
      .prefault({}),
    telemetry: z
      .object({
        /** OpenTelemetry trace export over OTLP/HTTP (JSON): off unless an endpoint is set. */
        otlp: z
          .object({
            endpoint: z.string().url().nullable().default(null),
            headers: z.record(z.string(), z.string()).default({}),
            service_name: z.string().min(1).default('aetherium'),
          })
          .prefault({}),
      })
      .prefault({}),
    log: z
      .object({
        level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
        pretty: z.boolean().default(false),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    const { oidc, jwt } = config.api_gateway.auth;
    if (oidc.issuer && !oidc.client_id) {
      ctx.addIssue({
        code: 'custom',
        path: ['api_gateway', 'auth', 'oidc', 'client_id'],
        message: 'OIDC sign-in needs the client id registered with the identity provider',
      });
    }
    if (oidc.issuer && !jwt.jwks_url && !jwt.secret) {
      ctx.addIssue({
        code: 'custom',
        path: ['api_gateway', 'auth', 'jwt', 'jwks_url'],
        message:
          "OIDC sign-in hands out the provider's tokens: set jwt.jwks_url (and issuer, audience) so they are accepted",
      });
    }
    if (config.worker.ttl <= config.worker.heartbeat_interval) {
      ctx.addIssue({
        code: 'custom',
        path: ['worker', 'ttl'],
        message: `must be larger than worker.heartbeat_interval (${config.worker.heartbeat_interval} ms), or health checks flap; 3 × the interval is a good value`,
      });
    }
    if (config.worker.lost_after <= config.worker.ttl) {
      ctx.addIssue({
        code: 'custom',
        path: ['worker', 'lost_after'],
        message: `must be larger than worker.ttl (${config.worker.ttl} ms): a VM is lost only after its worker counts as gone`,
      });
    }
  });

export type Config = z.output<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
