/**
 * The worker's end of the agent channel: one WebSocket over mutual TLS to one control-plane
 * replica at a time, reconnecting to any of them with backoff when it drops. Calls made while it
 * is down wait (up to `connectWaitMs`) for the next connection, so a replica restart is a pause,
 * not an error; a call in flight when the connection drops fails as `unavailable` (it may or may
 * not have been carried out: the link's callers are written for that).
 *
 * The server is verified as `server.aetherium` whatever address was dialled, with the cluster CA
 * only; the worker presents the certificate `tls()` returns at that moment, so a renewed
 * certificate is used from the next connection on.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { AetheriumError, ERROR_CATALOGUE, type ErrorCode, errorMessage, SERVER_NAME } from '../../domain/index.ts';
import {
  AGENT_PATHS,
  type AgentMethod,
  CLOSE,
  decodeFrame,
  encodeFrame,
  type ServerFrame,
  type WorkerFrame,
} from '../../ports/agent-protocol.ts';
import type { Logger } from '../../ports/logger.ts';

export interface AgentTls {
  ca: string;
  cert: string;
  key: string;
}

export interface AgentConnectionOptions {
  /** Agent ports, `host:port`. */
  servers: string[];
  tls: () => AgentTls;
  log: Logger;
  /** How long a call waits for a connection before it fails (default 30 s). */
  connectWaitMs?: number;
  /** How long a call waits for its answer (default 60 s). */
  callTimeoutMs?: number;
  /** A connection that hears nothing, not even a ping, for this long is dropped (default 20 s). */
  idleTimeoutMs?: number;
}

type FrameOf<T extends ServerFrame['t']> = Extract<ServerFrame, { t: T }>;
type Handlers = { [T in ServerFrame['t']]?: (frame: FrameOf<T>) => void };

interface Pending {
  resolve(value: unknown): void;
  reject(err: unknown): void;
  timer: NodeJS.Timeout;
}

/** Frames kept while disconnected (exec output, delivery ends): sent in order on the next connection. */
const OUTBOX_LIMIT = 10_000;

export class AgentConnection {
  private ws: WebSocket | null = null;
  private readonly pending = new Map<number, Pending>();
  private readonly handlers: Handlers = {};
  private readonly connectHooks: (() => Promise<void>)[] = [];
  private readonly outbox: WorkerFrame[] = [];
  private nextId = 1;
  private ready = false;
  private waiters: (() => void)[] = [];
  private stopped = false;
  private loop: Promise<void> | null = null;
  private serverIndex = 0;
  /** Increases with every connection: what was delivered on an earlier one is not answered on this one. */
  generation = 0;
  /** The replica connected to now, for logs. */
  server: string | null = null;

  constructor(private readonly options: AgentConnectionOptions) {
    if (!options.servers.length)
      throw new AetheriumError(
        'validation_failed',
        'no agent servers configured (worker.servers): the worker has nowhere to connect',
      );
    this.serverIndex = Math.floor(Math.random() * options.servers.length);
  }

  on<T extends ServerFrame['t']>(type: T, handler: (frame: FrameOf<T>) => void): void {
    (this.handlers as Record<string, (frame: ServerFrame) => void>)[type] = handler as (frame: ServerFrame) => void;
  }

  /** Runs on every connection before queued calls go out: re-register, resubscribe. */
  onConnect(hook: () => Promise<void>): void {
    this.connectHooks.push(hook);
  }

  start(): void {
    this.stopped = false;
    this.loop ??= this.run();
  }

  /** Waits for the first connection (and its hooks). */
  async connected(timeoutMs = this.options.connectWaitMs ?? 30_000): Promise<void> {
    await this.waitReady(timeoutMs);
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.ws?.close(1000, 'worker stopping');
    for (const wake of this.waiters.splice(0)) wake();
    await this.loop;
    this.loop = null;
  }

  /** Drops the connection and makes a new one (a renewed certificate is used from then on). */
  reconnect(reason: string): void {
    this.options.log.info({ reason }, 'agent channel: reconnecting');
    this.ws?.close(1000, reason);
  }

  call<T>(method: AgentMethod, args: unknown[]): Promise<T> {
    return this.waitReady(this.options.connectWaitMs ?? 30_000).then(() => this.rawCall<T>(method, args));
  }

  /** Sends now if connected; otherwise keeps the frame for the next connection. */
  send(frame: WorkerFrame): void {
    if (this.ready && this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(frame));
    else if (this.outbox.length < OUTBOX_LIMIT) this.outbox.push(frame);
  }

  /** Sends only on the connection that is open now (or drops the frame). */
  sendNow(frame: WorkerFrame, generation: number): void {
    if (generation === this.generation && this.ws?.readyState === WebSocket.OPEN) this.ws.send(encodeFrame(frame));
  }

  private rawCall<T>(method: AgentMethod, args: unknown[]): Promise<T> {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN)
      return Promise.reject(new AetheriumError('unavailable', 'the agent channel is not connected'));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AetheriumError('unavailable', `agent call ${method} got no answer in time`));
      }, this.options.callTimeoutMs ?? 60_000);
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject, timer });
      ws.send(encodeFrame({ t: 'call', id, method, args }));
    });
  }

  private waitReady(timeoutMs: number): Promise<void> {
    if (this.ready) return Promise.resolve();
    if (this.stopped) return Promise.reject(new AetheriumError('unavailable', 'the agent channel is closed'));
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== wake);
        reject(new AetheriumError('unavailable', `no control plane reachable on ${this.options.servers.join(', ')}`));
      }, timeoutMs);
      const wake = () => {
        clearTimeout(timer);
        if (this.ready) resolve();
        else reject(new AetheriumError('unavailable', 'the agent channel is closed'));
      };
      this.waiters.push(wake);
    });
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopped) {
      const server = this.options.servers[this.serverIndex % this.options.servers.length] as string;
      try {
        await this.connectOnce(server);
        failures = 0;
      } catch (err) {
        failures++;
        const log = failures <= 3 || failures % 20 === 0 ? 'warn' : 'debug';
        this.options.log[log]({ server, err: errorMessage(err), failures }, 'agent channel: could not connect');
        // The next replica, unless there is only one.
        this.serverIndex++;
      }
      if (this.stopped) break;
      await sleep(Math.min(5000, 200 * 2 ** Math.min(failures, 5)) * (0.75 + Math.random() / 2));
    }
  }

  /** One connection, from dial to close. Resolves when it closed after having opened. */
  private connectOnce(server: string): Promise<void> {
    const tls = this.options.tls();
    // `servername` reaches tls.connect, which then checks the certificate for that name: the
    // replica's role, not the address dialled (the types of `ws` do not list it).
    const options: WebSocket.ClientOptions & { servername: string } = {
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      servername: SERVER_NAME,
      handshakeTimeout: 10_000,
      maxPayload: 16 * 1024 * 1024,
    };
    const ws = new WebSocket(`wss://${server}${AGENT_PATHS.channel}`, options);
    return new Promise<void>((resolve, reject) => {
      let opened = false;
      let idle: NodeJS.Timeout | null = null;
      const idleMs = this.options.idleTimeoutMs ?? 20_000;
      const alive = () => {
        if (idle) clearTimeout(idle);
        idle = setTimeout(() => {
          this.options.log.warn({ server }, 'agent channel: the control plane went silent; reconnecting');
          ws.terminate();
        }, idleMs);
      };
      ws.on('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
        response.on('end', () => {
          let message = body;
          try {
            message = (JSON.parse(body) as { error?: { message?: string } }).error?.message ?? body;
          } catch {
            /* not our JSON */
          }
          reject(new Error(`refused (${response.statusCode}): ${message}`));
          ws.terminate();
        });
      });
      ws.on('error', (err) => {
        if (!opened) reject(err);
      });
      ws.on('open', () => {
        opened = true;
        this.ws = ws;
        this.server = server;
        this.generation++;
        alive();
        void this.afterOpen(ws, server);
      });
      ws.on('ping', alive);
      ws.on('message', (raw: Buffer) => {
        alive();
        this.onFrame(raw.toString('utf8'));
      });
      ws.on('close', (code, reason) => {
        if (idle) clearTimeout(idle);
        if (!opened) return reject(new Error(`closed before opening (${code})`));
        this.ready = false;
        this.ws = null;
        this.server = null;
        for (const [id, pending] of this.pending) {
          clearTimeout(pending.timer);
          pending.reject(new AetheriumError('unavailable', 'the agent channel closed during the call'));
          this.pending.delete(id);
        }
        const text = reason.toString('utf8');
        if (code === CLOSE.identity)
          this.options.log.error({ server, reason: text }, 'agent channel: the certificate was refused');
        else if (!this.stopped)
          this.options.log.warn({ server, code, reason: text }, 'agent channel closed; reconnecting');
        resolve();
      });
    });
  }

  private async afterOpen(ws: WebSocket, server: string): Promise<void> {
    try {
      for (const hook of this.connectHooks) await hook();
    } catch (err) {
      this.options.log.warn({ server, err: errorMessage(err) }, 'agent channel: resuming on the new connection failed');
      ws.close(1011, 'resume failed');
      return;
    }
    if (ws.readyState !== WebSocket.OPEN) return;
    this.ready = true;
    for (const frame of this.outbox.splice(0)) ws.send(encodeFrame(frame));
    for (const wake of this.waiters.splice(0)) wake();
    this.options.log.info({ server, generation: this.generation }, 'agent channel connected');
  }

  /** Hooks run before `ready`: their calls go out directly. */
  hookCall<T>(method: AgentMethod, args: unknown[]): Promise<T> {
    return this.rawCall<T>(method, args);
  }

  private onFrame(text: string): void {
    let frame: ServerFrame;
    try {
      frame = decodeFrame(text) as ServerFrame;
    } catch {
      this.options.log.warn('agent channel: a frame that is not JSON; ignored');
      return;
    }
    if (frame.t === 'reply') {
      const pending = this.pending.get(frame.id);
      if (!pending) return;
      this.pending.delete(frame.id);
      clearTimeout(pending.timer);
      if (frame.ok) pending.resolve(frame.value);
      else pending.reject(toError(frame.error.code, frame.error.message));
      return;
    }
    const handler = (this.handlers as Record<string, ((frame: ServerFrame) => void) | undefined>)[frame.t];
    try {
      handler?.(frame);
    } catch (err) {
      this.options.log.warn({ frame: frame.t, err: errorMessage(err) }, 'agent channel: handling a frame failed');
    }
  }
}

function toError(code: string, message: string): Error {
  return code in ERROR_CATALOGUE ? new AetheriumError(code as ErrorCode, message) : new Error(message);
}
