/**
 * The agent port: where workers connect, apart from the API (like Nomad's RPC port). TLS with a
 * client certificate signed by the cluster CA is required for everything but the two bootstrap
 * routes a worker without a certificate needs: `GET /v1/ca` (to check the CA against the pin in
 * its join token) and `POST /v1/join` (a join token and a CSR, answered with a certificate). This
 * is how kubelets bootstrap too: the handshake asks for a certificate, the routes decide.
 *
 *   GET  /v1/channel   WebSocket, the worker's WorkerLink (certificate required)
 *   GET  /v1/ca        the CA certificate and its fingerprint
 *   POST /v1/join      { token, worker_id, csr } → { certificate, ca, expires_at }
 *   GET  /v1/health    liveness of the port
 *
 * One session per worker id: a second connection for an id that is connected is refused (409),
 * so two hosts configured with the same id cannot both run. Sessions are pinged; one that misses
 * a pong is dropped, so a half-open connection does not hold the id for long.
 */
import type { TLSSocket } from 'node:tls';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { WebSocket } from 'ws';
import { AetheriumError, identityFromAltNames, issuedAt } from '../../domain/index.ts';
import { Service } from '../../lifecycle/service.ts';
import { AGENT_PATHS, CLOSE, type JoinResponse, joinRequestSchema } from '../../ports/agent-protocol.ts';
import type { Logger } from '../../ports/logger.ts';
import { AgentSession, type AgentSessionDeps, REVOCATION_CHECK_MS } from './agent-session.ts';
import { RevocationCache } from './revocation-cache.ts';
import { LogRelay, type WorkerLogs } from './log-relay.ts';
import type { PeerIdentity } from './node-guard.ts';

export interface AgentServerOptions {
  host: string;
  port: number;
  /** This replica's server certificate and key, and the CA whose client certificates it accepts. */
  tls: { cert: string | Buffer; key: string | Buffer; ca: string | Buffer };
  pingIntervalMs: number;
}

export interface JoinRedeemer {
  redeem(
    token: string,
    workerId: string,
    now: Date,
  ): Promise<{ ok: true; record: { id: string } } | { ok: false; reason: string }>;
}

/** The server makes the sessions' shared revocation cache itself. */
export interface AgentServerDeps extends Omit<AgentSessionDeps, 'revocations'> {
  joins: JoinRedeemer | null;
}

type Refusal = { status: number; code: string; message: string };

export class AgentServer extends Service {
  private app: FastifyInstance | null = null;
  private readonly sessions = new Map<string, AgentSession>();
  private pinger: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  private readonly relay: LogRelay;
  private readonly revocations: RevocationCache;
  address: string | null = null;

  constructor(
    private readonly options: AgentServerOptions,
    private readonly deps: AgentServerDeps,
  ) {
    super('agent port');
    this.log = deps.log.child({ component: 'agent-port' });
    this.relay = new LogRelay(deps.channels, (id) => this.session(id), this.log);
    this.revocations = new RevocationCache(deps.store, REVOCATION_CHECK_MS);
  }

  /** Worker logs, from whichever replica holds the worker. */
  get logs(): WorkerLogs {
    return this.relay;
  }

  /** The session of a worker connected to this replica, if any. */
  session(workerId: string): AgentSession | null {
    return this.sessions.get(workerId) ?? null;
  }

  connectedWorkers(): string[] {
    return [...this.sessions.keys()];
  }

  protected async onStart(): Promise<void> {
    const app = Fastify({
      logger: false,
      https: {
        ...this.options.tls,
        requestCert: true,
        // The bootstrap routes must be reachable without a certificate; every other route
        // refuses a connection whose certificate did not verify (see `peerOf`).
        rejectUnauthorized: false,
        minVersion: 'TLSv1.2',
      },
      bodyLimit: 64 * 1024,
    });
    app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _request, reply) => {
      if (err instanceof AetheriumError)
        return refuse(reply, { status: err.status, code: err.code, message: err.message });
      if (err.statusCode && err.statusCode < 500)
        return refuse(reply, { status: err.statusCode, code: 'bad_request', message: err.message });
      this.log.error({ err }, 'agent port request failed');
      return refuse(reply, {
        status: 500,
        code: 'internal',
        message: 'internal error; the control plane log has the details',
      });
    });
    app.setNotFoundHandler((_request, reply) =>
      refuse(reply, { status: 404, code: 'not_found', message: 'no such agent route' }),
    );
    await app.register(websocket, { options: { maxPayload: 16 * 1024 * 1024 } });

    app.get(AGENT_PATHS.health, async () => ({ status: 'ok', workers: this.sessions.size }));
    app.get(AGENT_PATHS.ca, async (_request, reply) => {
      if (!this.deps.ca) return refuse(reply, noCa());
      return { ca: this.deps.ca.caPem, fingerprint: this.deps.ca.fingerprint };
    });
    app.post(AGENT_PATHS.join, async (request, reply) => this.join(request, reply));

    app.get(
      AGENT_PATHS.channel,
      {
        websocket: true,
        preValidation: async (request, reply) => {
          const peer = await this.admit(request);
          if ('status' in peer) return refuse(reply, peer);
          (request as FastifyRequest & { peer?: PeerIdentity }).peer = peer;
        },
      },
      (socket, request) => this.open(socket as WebSocket, (request as FastifyRequest & { peer: PeerIdentity }).peer),
    );

    await app.listen({ host: this.options.host, port: this.options.port });
    this.app = app;
    const bound = app.server.address();
    this.address = typeof bound === 'object' && bound ? `${bound.address}:${bound.port}` : null;
    this.pinger = setInterval(() => this.ping(), this.options.pingIntervalMs);
    this.pinger.unref();
    this.log.info({ address: this.address }, 'agent port listening (mutual TLS)');
  }

  protected async onStop(): Promise<void> {
    if (this.pinger) clearInterval(this.pinger);
    this.pinger = null;
    const sessions = [...this.sessions.values()];
    for (const session of sessions) session.close(CLOSE.shutdown, 'the control plane replica is shutting down');
    await Promise.all(sessions.map((s) => s.closed));
    await this.app?.close();
    this.app = null;
  }

  /** Who is calling, from the verified certificate only; or why they may not. */
  private async admit(request: FastifyRequest): Promise<PeerIdentity | Refusal> {
    const peer = peerOf(request.raw.socket as TLSSocket);
    if ('status' in peer) return peer;
    const cutoff = await this.deps.store.workerCertificatesRevokedBefore(peer.workerId);
    if (cutoff && issuedAt(peer.notBefore) <= cutoff)
      return {
        status: 401,
        code: 'unauthorized',
        message: `the certificate of worker ${peer.workerId} has been revoked`,
      };
    if (this.sessions.has(peer.workerId))
      return {
        status: 409,
        code: 'conflict',
        message: `worker ${peer.workerId} is already connected; two workers with one id cannot run side by side`,
      };
    return peer;
  }

  private open(ws: WebSocket, peer: PeerIdentity): void {
    const session = new AgentSession(ws, peer, { ...this.deps, log: this.log, revocations: this.revocations });
    this.sessions.set(peer.workerId, session);
    this.log.info({ worker_id: peer.workerId, serial: peer.serial, source: peer.source }, 'worker connected');
    const detach = this.relay.attach(session).catch((err: unknown) => {
      this.log.warn({ worker_id: peer.workerId, err }, 'worker logs will not be served from other replicas');
      return async () => undefined;
    });
    void session.closed.then(async () => {
      await (await detach)().catch(() => undefined);
      if (this.sessions.get(peer.workerId) === session) this.sessions.delete(peer.workerId);
      this.log.info({ worker_id: peer.workerId }, 'worker disconnected');
    });
  }

  private ping(): void {
    for (const session of this.sessions.values()) session.ping();
  }

  private async join(request: FastifyRequest, reply: FastifyReply): Promise<JoinResponse | FastifyReply> {
    const { ca, joins, store } = this.deps;
    if (!ca || !joins) return refuse(reply, noCa());
    const body = joinRequestSchema.safeParse(request.body);
    if (!body.success) {
      const issue = body.error.issues[0];
      return refuse(reply, {
        status: 400,
        code: 'validation_failed',
        message: `${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}`,
      });
    }
    const { token, worker_id: workerId, csr } = body.data;
    const source = request.raw.socket.remoteAddress ?? null;
    const audit = (outcome: 'succeeded' | 'denied', status: number, target: string, details: Record<string, string>) =>
      store
        .insertAudit({
          actor: `join:${workerId}`,
          actor_kind: 'certificate',
          role: null,
          action: 'agent.join',
          route: `POST ${AGENT_PATHS.join}`,
          target,
          source,
          outcome,
          status,
          details,
        })
        .catch((err: unknown) => this.log.error({ err }, 'audit write failed'));
    if (this.sessions.has(workerId)) {
      await audit('denied', 409, `worker:${workerId}`, { reason: 'connected' });
      return refuse(reply, {
        status: 409,
        code: 'conflict',
        message: `worker ${workerId} is connected now; a second worker cannot join with its id`,
      });
    }
    const redeemed = await joins.redeem(token, workerId, new Date());
    if (!redeemed.ok) {
      await audit('denied', 401, `worker:${workerId}`, { reason: redeemed.reason });
      this.log.warn({ worker_id: workerId, reason: redeemed.reason, source }, 'a join was refused');
      return refuse(reply, {
        status: 401,
        code: 'unauthorized',
        message: `join refused: the token is ${redeemed.reason.replace('_', ' ')}`,
      });
    }
    const issued = await ca.signWorker(csr, workerId, this.deps.certTtlMs);
    await audit('succeeded', 201, `worker:${workerId}`, { token_id: redeemed.record.id, serial: issued.serial });
    this.log.info({ worker_id: workerId, serial: issued.serial, token_id: redeemed.record.id }, 'a worker joined');
    reply.code(201);
    return {
      worker_id: workerId,
      certificate: issued.certPem,
      ca: ca.caPem,
      expires_at: issued.notAfter.toISOString(),
    };
  }
}

function refuse(reply: FastifyReply, refusal: Refusal): FastifyReply {
  return reply.code(refusal.status).send({ error: { code: refusal.code, message: refusal.message } });
}

function noCa(): Refusal {
  return {
    status: 409,
    code: 'conflict',
    message: 'this control plane holds no agent CA key (agent.tls.ca_key_file): it cannot admit workers by token',
  };
}

/** The worker identity of a verified client certificate, or why there is none. */
export function peerOf(socket: TLSSocket): PeerIdentity | Refusal {
  const unauthorized = (message: string): Refusal => ({ status: 401, code: 'unauthorized', message });
  if (typeof socket.getPeerCertificate !== 'function') return unauthorized('the agent port takes TLS connections only');
  const cert = socket.getPeerCertificate();
  if (!cert?.raw) return unauthorized('a client certificate signed by the cluster CA is required');
  if (!socket.authorized)
    return unauthorized(`the client certificate was refused (${String(socket.authorizationError ?? 'not verified')})`);
  const identity = identityFromAltNames(cert.subjectaltname);
  if (identity?.kind !== 'worker') return unauthorized('the client certificate names no worker');
  return {
    workerId: identity.id,
    serial: cert.serialNumber,
    notBefore: new Date(cert.valid_from),
    notAfter: new Date(cert.valid_to),
    source: socket.remoteAddress ?? null,
  };
}
