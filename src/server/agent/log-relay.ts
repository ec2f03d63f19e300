/**
 * Worker logs from any replica. The lines live on the worker (a bounded buffer) and travel on its
 * agent channel, which one replica holds; the API request may reach another. Each replica listens
 * on `agent:<id>:control` for the workers it holds; the replica serving the request asks there
 * with a reply channel of its own and streams what comes back. Nobody answering within a few
 * seconds means the worker is connected to no replica.
 */
import { randomUUID } from 'node:crypto';
import { AetheriumError } from '../../domain/index.ts';
import { CLOSE } from '../../ports/agent-protocol.ts';
import type { ChannelMessage, ExecChannels } from '../../ports/exec-channels.ts';
import type { Logger } from '../../ports/logger.ts';
import type { AgentSession, LogStream } from './agent-session.ts';

export interface LogRequest {
  since: number | null;
  follow: boolean;
  limit: number;
}

export interface WorkerLogs {
  /** Streams the worker's lines into `stream`; resolves with a stop function once the worker answers. */
  open(workerId: string, request: LogRequest, stream: LogStream): Promise<() => void>;
}

/** Where the replica holding a worker's channel listens for requests about it (logs, revocation). */
export const agentControlChannel = (workerId: string) => `agent:${workerId}:control`;
const ANSWER_WITHIN_MS = 3000;

export class LogRelay implements WorkerLogs {
  constructor(
    private readonly channels: ExecChannels,
    private readonly local: (workerId: string) => AgentSession | null,
    private readonly log: Logger,
  ) {}

  /** Serves relay requests for a session this replica holds; returns the unsubscribe. */
  async attach(session: AgentSession): Promise<() => Promise<void>> {
    return this.channels.subscribe(agentControlChannel(session.workerId), (message) => {
      if (message.type === 'revoked') session.close(CLOSE.identity, 'the worker certificate has been revoked');
      if (message.type !== 'logs_request') return;
      void this.serve(session, message);
    });
  }

  private async serve(session: AgentSession, request: Extract<ChannelMessage, { type: 'logs_request' }>) {
    const { channels } = this;
    const reply = request.reply;
    let stop: (() => void) | null = null;
    const unsubscribe = await channels.subscribe(`${reply}:stop`, () => {
      stop?.();
      void unsubscribe();
    });
    await channels.publish(reply, { type: 'logs_accepted' });
    stop = session.requestLogs(request, {
      onLines: (lines) => void channels.publish(reply, { type: 'log_lines', lines }),
      onEnd: (reason) => {
        void channels.publish(reply, { type: 'logs_end', reason });
        void unsubscribe();
      },
    });
  }

  async open(workerId: string, request: LogRequest, stream: LogStream): Promise<() => void> {
    const session = this.local(workerId);
    if (session) return session.requestLogs(request, stream);
    const reply = `agent-logs:${randomUUID()}`;
    let accepted: () => void = () => undefined;
    const answered = new Promise<void>((resolve) => (accepted = resolve));
    const unsubscribe = await this.channels.subscribe(reply, (message) => {
      if (message.type === 'logs_accepted') accepted();
      else if (message.type === 'log_lines') stream.onLines(message.lines);
      else if (message.type === 'logs_end') {
        stream.onEnd(message.reason);
        void unsubscribe();
      }
    });
    await this.channels.publish(agentControlChannel(workerId), { type: 'logs_request', reply, ...request });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<'timeout'>(
      (resolve) => (timer = setTimeout(() => resolve('timeout'), ANSWER_WITHIN_MS)),
    );
    const outcome = await Promise.race([answered.then(() => 'answered' as const), timeout]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      await unsubscribe();
      this.log.debug({ worker_id: workerId }, 'no replica holds the worker for a log request');
      throw new AetheriumError('not_found', `worker ${workerId} is not connected to any control plane replica`);
    }
    return () => {
      void this.channels.publish(`${reply}:stop`, { type: 'logs_stop' });
      void unsubscribe();
    };
  }
}
