/**
 * One worker's agent channel, on the replica that holds it. The session turns the worker's calls
 * into the control plane's own WorkerLink (the same code `aetherium dev` runs in-process), after
 * the node guard has checked them against the certificate, and it pushes to the worker what the
 * worker used to pull from the engines itself:
 *
 * - task deliveries: the replica consumes the worker's queue (BullMQ stays on this side) and hands
 *   each message over the channel, finishing the queue job when the worker says it is done. When
 *   the channel drops, the deliveries not yet claimed are queued again at once; when the replica
 *   dies, BullMQ's stalled-job check hands its active jobs to the next consumer of that queue
 *   (the replica the worker reconnects to);
 * - cancels asked for anywhere in the cluster, for tasks the worker holds;
 * - exec-channel messages (stdin) for the commands it runs, and its output back to the bus;
 * - requests for its recent log lines.
 *
 * The certificate is checked again on every call: one that expires or is revoked while the
 * connection is open ends the session (close code 4401), and the worker must get a new one.
 */
import type { WebSocket } from 'ws';
import { AetheriumError, errorMessage, isTransientEngineError, issuedAt } from '../../domain/index.ts';
import {
  type AgentMethod,
  CALL_ARGS,
  CLOSE,
  decodeFrame,
  encodeFrame,
  type LogLine,
  type RenewResponse,
  type ServerFrame,
  type WireError,
  workerFrameSchema,
} from '../../ports/agent-protocol.ts';
import type { ExecChannels } from '../../ports/exec-channels.ts';
import type { Logger } from '../../ports/logger.ts';
import type { NodeCertificateAuthority } from '../../ports/node-ca.ts';
import type { Store } from '../../ports/store.ts';
import type { QueueConsumer, QueuedTask, TaskQueue } from '../../ports/task-queue.ts';
import type { WorkerLink } from '../../ports/worker-link.ts';
import { NodeGuard, type PeerIdentity, targetOf } from './node-guard.ts';
import type { RevocationCache } from './revocation-cache.ts';

export interface AgentSessionDeps {
  link: WorkerLink;
  store: Store;
  queue: TaskQueue;
  channels: ExecChannels;
  /** Signs renewals; null when this replica has no CA key (renewal is then refused). */
  ca: NodeCertificateAuthority | null;
  certTtlMs: number;
  log: Logger;
  /** The certificate cut-offs, shared by this replica's sessions. */
  revocations: RevocationCache;
}

interface Delivery {
  task: QueuedTask;
  finish: () => void;
}

export interface LogStream {
  onLines(lines: LogLine[]): void;
  onEnd(reason: string | null): void;
}

/** Revocations are read from the store at most this often per session. */
export const REVOCATION_CHECK_MS = 2000;

export class AgentSession {
  private readonly guard: NodeGuard;
  private readonly log: Logger;
  private readonly deliveries = new Map<number, Delivery>();
  private readonly subscriptions = new Map<string, () => Promise<void>>();
  /** Channels the guard has allowed for publishing, so output chunks cost no store read each. */
  private readonly publishable = new Set<string>();
  private readonly logStreams = new Map<number, LogStream>();
  private consumer: QueueConsumer | null = null;
  private cancelWatch: (() => void) | null = null;
  private nextDelivery = 1;
  private nextStream = 1;
  private revocationCheckedAt = 0;
  private closing = false;
  /** A pong came back since the last ping. */
  private answered = true;
  readonly closed: Promise<void>;

  constructor(
    private readonly ws: WebSocket,
    readonly peer: PeerIdentity,
    private readonly deps: AgentSessionDeps,
  ) {
    this.log = deps.log.child({ worker_id: peer.workerId });
    this.guard = new NodeGuard(peer, deps.store, this.log);
    this.closed = new Promise((resolve) => {
      ws.on('close', () => {
        this.closing = true;
        void this.cleanup().finally(resolve);
      });
    });
    ws.on('message', (raw: Buffer) => void this.onMessage(raw.toString('utf8')));
    ws.on('pong', () => {
      this.answered = true;
    });
  }

  /** Pings the worker; one that did not answer the last ping is dropped (a half-open connection). */
  ping(): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    if (!this.answered) {
      this.log.warn('worker missed a ping; dropping its connection');
      this.ws.terminate();
      return;
    }
    this.answered = false;
    this.ws.ping();
  }

  get workerId(): string {
    return this.peer.workerId;
  }

  close(code: number, reason: string): void {
    this.closing = true;
    if (this.ws.readyState === this.ws.OPEN || this.ws.readyState === this.ws.CONNECTING) this.ws.close(code, reason);
  }

  /** Asks the worker for its log lines; returns a stop function. */
  requestLogs(options: { since: number | null; follow: boolean; limit: number }, stream: LogStream): () => void {
    const id = this.nextStream++;
    this.logStreams.set(id, stream);
    this.send({ t: 'logs', stream: id, ...options });
    return () => {
      if (!this.logStreams.delete(id)) return;
      this.send({ t: 'logs_stop', stream: id });
    };
  }

  private send(frame: ServerFrame): void {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(encodeFrame(frame));
  }

  private async onMessage(text: string): Promise<void> {
    let frame: ReturnType<typeof workerFrameSchema.parse>;
    try {
      frame = workerFrameSchema.parse(decodeFrame(text));
    } catch {
      this.log.warn('agent channel: a frame that breaks the protocol; closing');
      return this.close(CLOSE.protocol, 'frames are JSON objects of the agent protocol');
    }
    switch (frame.t) {
      case 'call': {
        const reply = await this.audited(frame.method, frame.args).then(
          (value) => ({ t: 'reply', id: frame.id, ok: true, value: value ?? null }) as const,
          (err: unknown) => ({ t: 'reply', id: frame.id, ok: false, error: this.wireError(err) }) as const,
        );
        this.send(reply);
        return;
      }
      case 'done': {
        const delivery = this.deliveries.get(frame.delivery);
        this.deliveries.delete(frame.delivery);
        delivery?.finish();
        return;
      }
      case 'publish': {
        try {
          await this.checkIdentity();
          if (!this.publishable.has(frame.channel)) {
            await this.guard.channel(frame.channel).catch(async (err: AetheriumError) => {
              await this.guard.denied('publish', frame.channel, err);
              throw err;
            });
            this.publishable.add(frame.channel);
          }
          await this.deps.channels.publish(frame.channel, frame.message);
        } catch (err) {
          this.log.warn({ channel: frame.channel, err: errorMessage(err) }, 'agent channel: publish dropped');
        }
        return;
      }
      case 'logs': {
        const stream = this.logStreams.get(frame.stream);
        if (!stream) return;
        if (frame.lines.length) stream.onLines(frame.lines);
        if (frame.end) {
          this.logStreams.delete(frame.stream);
          stream.onEnd(null);
        }
        return;
      }
    }
  }

  private wireError(err: unknown): WireError {
    if (err instanceof AetheriumError) return { code: err.code, message: err.message };
    if (isTransientEngineError(err))
      return { code: 'unavailable', message: 'a backing engine is unavailable right now; retry' };
    this.log.error({ err }, 'agent call failed');
    return { code: 'internal', message: 'internal error; the control plane log has the details' };
  }

  /** Expired or revoked since the handshake: the session ends, the call is refused. */
  private async checkIdentity(): Promise<void> {
    const now = Date.now();
    let reason: string | null = null;
    if (now >= this.peer.notAfter.getTime()) reason = 'the worker certificate has expired';
    else if (now - this.revocationCheckedAt >= REVOCATION_CHECK_MS) {
      const cutoff = await this.deps.revocations.cutoff(this.peer.workerId, now);
      this.revocationCheckedAt = now;
      if (cutoff && issuedAt(this.peer.notBefore) <= cutoff) reason = 'the worker certificate has been revoked';
    }
    if (reason) {
      this.close(CLOSE.identity, reason);
      throw new AetheriumError('unauthorized', reason);
    }
  }

  /** A refused call leaves a trail: whoever holds this certificate tried something not theirs. */
  private async audited(method: AgentMethod, rawArgs: unknown[]): Promise<unknown> {
    try {
      return await this.call(method, rawArgs);
    } catch (err) {
      if (err instanceof AetheriumError && err.code === 'forbidden')
        await this.guard.denied(method, targetOf(method, rawArgs), err);
      throw err;
    }
  }

  private async call(method: AgentMethod, rawArgs: unknown[]): Promise<unknown> {
    await this.checkIdentity();
    const parsed = CALL_ARGS[method].safeParse(rawArgs);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new AetheriumError(
        'validation_failed',
        `${method}: argument ${issue?.path.join('.') || '?'}: ${issue?.message ?? 'invalid'}`,
      );
    }
    const args = parsed.data as never as unknown[];
    const { link } = this.deps;
    const guard = this.guard;
    const id = this.peer.workerId;
    switch (method) {
      case 'register': {
        const [registration, options] = args as Parameters<WorkerLink['register']>;
        guard.self(registration.id);
        const answer = await link.register(registration, options);
        // Cancels flow from the moment the worker is known, so none published after its first
        // call can slip past a listener it adds later.
        this.watchCancels();
        return answer;
      }
      case 'heartbeat':
      case 'deregister':
      case 'assignments':
      case 'drainProgress': {
        const [workerId] = args as [string];
        guard.self(workerId);
        return link[method](workerId);
      }
      case 'reportResources': {
        const [workerId, resources] = args as Parameters<WorkerLink['reportResources']>;
        guard.self(workerId);
        return link.reportResources(workerId, resources);
      }
      case 'recordMetrics': {
        const [sample] = args as Parameters<WorkerLink['recordMetrics']>;
        guard.self(sample.worker_id);
        return link.recordMetrics(sample);
      }
      case 'requestDrain': {
        const [workerId, request] = args as Parameters<WorkerLink['requestDrain']>;
        guard.self(workerId);
        return link.requestDrain(workerId, request);
      }
      case 'claimTask': {
        const [workerId, taskId, resume] = args as Parameters<WorkerLink['claimTask']>;
        guard.self(workerId);
        return link.claimTask(workerId, taskId, resume);
      }
      case 'reportOutcome': {
        const [workerId, taskId, outcome] = args as Parameters<WorkerLink['reportOutcome']>;
        guard.self(workerId);
        return link.reportOutcome(workerId, taskId, outcome);
      }
      case 'reportVm': {
        const [workerId, vmId, report] = args as Parameters<WorkerLink['reportVm']>;
        guard.self(workerId);
        return link.reportVm(workerId, vmId, report);
      }
      case 'recordExecution': {
        const [workerId, execution] = args as Parameters<WorkerLink['recordExecution']>;
        guard.self(workerId);
        return link.recordExecution(workerId, execution);
      }
      case 'consume': {
        const [workerId, options] = args as [string, { concurrency: number }];
        guard.self(workerId);
        this.consumer ??= link.consume(id, (task, signal) => this.deliver(task, signal), options);
        return null;
      }
      case 'pauseConsume':
      case 'resumeConsume':
      case 'stopConsume': {
        const [workerId] = args as [string];
        guard.self(workerId);
        if (method === 'pauseConsume') await this.consumer?.pause();
        else if (method === 'resumeConsume') this.consumer?.resume();
        else {
          const consumer = this.consumer;
          this.consumer = null;
          await consumer?.close();
        }
        return null;
      }
      case 'watchCancels': {
        const [workerId] = args as [string];
        guard.self(workerId);
        this.watchCancels();
        return null;
      }
      case 'subscribeChannel': {
        const [channel] = args as [string];
        await guard.channel(channel);
        if (!this.subscriptions.has(channel)) {
          const unsubscribe = await this.deps.channels.subscribe(channel, (message) =>
            this.send({ t: 'message', channel, message }),
          );
          // The connection may have closed while subscribing: nothing would ever unsubscribe it.
          if (this.closing) await unsubscribe();
          else this.subscriptions.set(channel, unsubscribe);
        }
        return null;
      }
      case 'unsubscribeChannel': {
        const [channel] = args as [string];
        const unsubscribe = this.subscriptions.get(channel);
        this.subscriptions.delete(channel);
        await unsubscribe?.();
        return null;
      }
      case 'renew': {
        const [csr] = args as [string];
        if (!this.deps.ca)
          throw new AetheriumError(
            'conflict',
            'this control plane holds no CA key (agent.tls.ca_key_file): it cannot renew',
          );
        const issued = await this.deps.ca.signWorker(csr, id, this.deps.certTtlMs);
        this.log.info({ serial: issued.serial, expires_at: issued.notAfter }, 'worker certificate renewed');
        return { certificate: issued.certPem, expires_at: issued.notAfter.toISOString() } satisfies RenewResponse;
      }
    }
  }

  private watchCancels(): void {
    this.cancelWatch ??= this.deps.link.onCancel(this.peer.workerId, (taskId, reason) =>
      this.send({ t: 'cancel', task_id: taskId, reason }),
    );
  }

  /** A queue message for this worker: handed over the channel; the job ends when the worker is done. */
  private deliver(task: QueuedTask, signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.closing) {
        this.requeue([task]);
        return resolve();
      }
      const delivery = this.nextDelivery++;
      this.deliveries.set(delivery, { task, finish: resolve });
      signal.addEventListener('abort', () => this.send({ t: 'abort', delivery }), { once: true });
      this.send({ t: 'deliver', delivery, task });
    });
  }

  /** Deliveries the worker never finished go back to its queue, for its next connection. */
  private requeue(tasks: QueuedTask[]): void {
    const { store, queue } = this.deps;
    for (const task of tasks) {
      void (async () => {
        const row = await store.getTask(task.id);
        // Only what is still waiting for this worker: a claimed task resumes from the task row.
        if (row?.status === 'scheduled' && row.worker_id === this.peer.workerId)
          await queue.enqueue(this.peer.workerId, task);
      })().catch((err: unknown) =>
        this.log.warn({ task_id: task.id, err: errorMessage(err) }, 'could not queue an unfinished delivery again'),
      );
    }
  }

  private async cleanup(): Promise<void> {
    const unfinished = [...this.deliveries.values()];
    this.deliveries.clear();
    for (const delivery of unfinished) delivery.finish();
    const consumer = this.consumer;
    this.consumer = null;
    this.cancelWatch?.();
    this.cancelWatch = null;
    for (const stream of this.logStreams.values()) stream.onEnd('the worker disconnected');
    this.logStreams.clear();
    const unsubscribes = [...this.subscriptions.values()];
    this.subscriptions.clear();
    await Promise.allSettled([consumer?.close(), ...unsubscribes.map((u) => u())]);
    this.requeue(unfinished.map((d) => d.task));
  }
}
