/**
 * A worker's recent log lines, kept in memory for `GET /workers/{id}/logs` (the original design's
 * "view worker logs"): a pino destination that keeps the last `capacity` lines (already redacted
 * by the logger) and hands new ones to followers. The control plane asks for them over the agent
 * channel; nothing is written to disk and nothing is sent unless someone asks.
 */
import { Writable } from 'node:stream';
import type { LogLine } from '../ports/agent-protocol.ts';
import type { AgentConnection } from '../adapters/agent/agent-connection.ts';
import { notFound } from '../domain/index.ts';
import type { LogRequest, WorkerLogs } from '../server/agent/log-relay.ts';
import type { LogStream } from '../server/agent/agent-session.ts';

export class LogBuffer extends Writable {
  private readonly lines: LogLine[] = [];
  private readonly followers = new Set<(line: LogLine) => void>();

  constructor(private readonly capacity = 5000) {
    super({ decodeStrings: false });
  }

  override _write(chunk: Buffer | string, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    for (const text of chunk.toString().split('\n')) {
      if (!text) continue;
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        line = { time: Date.now(), msg: text };
      }
      this.lines.push(line);
      if (this.lines.length > this.capacity) this.lines.splice(0, this.lines.length - this.capacity);
      for (const follower of this.followers) follower(line);
    }
    callback();
  }

  /** Lines at or after `since` (ms since the epoch), the newest `limit` of them. */
  recent(since: number | null, limit: number): LogLine[] {
    const matching =
      since === null ? this.lines : this.lines.filter((l) => typeof l.time === 'number' && l.time >= since);
    return matching.slice(-limit);
  }

  follow(listener: (line: LogLine) => void): () => void {
    this.followers.add(listener);
    return () => this.followers.delete(listener);
  }
}

/** Answers the control plane's `logs` requests on the channel from the buffer. */
export function serveLogs(connection: AgentConnection, buffer: LogBuffer): void {
  const follows = new Map<number, () => void>();
  connection.on('logs', (request) => {
    const generation = connection.generation;
    const send = (lines: LogLine[], end: boolean) =>
      connection.sendNow({ t: 'logs', stream: request.stream, lines, ...(end ? { end } : {}) }, generation);
    send(buffer.recent(request.since, request.limit), !request.follow);
    if (!request.follow) return;
    // Batched a little: a busy worker writes many lines a second, one frame each would be wasteful.
    let batch: LogLine[] = [];
    let timer: NodeJS.Timeout | null = null;
    const unfollow = buffer.follow((line) => {
      if (connection.generation !== generation) return stop();
      batch.push(line);
      timer ??= setTimeout(() => {
        timer = null;
        const lines = batch;
        batch = [];
        send(lines, false);
      }, 100);
    });
    const stop = () => {
      unfollow();
      if (timer) clearTimeout(timer);
      follows.delete(request.stream);
    };
    follows.set(request.stream, stop);
  });
  connection.on('logs_stop', (request) => follows.get(request.stream)?.());
}

/**
 * `aetherium dev`: the worker is in the control plane's process, so its log is the process's
 * log, served from the same kind of buffer without a channel in between.
 */
export class LocalWorkerLogs implements WorkerLogs {
  constructor(
    private readonly buffer: LogBuffer,
    private readonly workerId: string,
  ) {}

  async open(workerId: string, request: LogRequest, stream: LogStream): Promise<() => void> {
    if (workerId !== this.workerId) throw notFound('connected worker', workerId);
    const past = this.buffer.recent(request.since, request.limit);
    if (!request.follow) {
      queueMicrotask(() => {
        stream.onLines(past);
        stream.onEnd(null);
      });
      return () => undefined;
    }
    queueMicrotask(() => stream.onLines(past));
    return this.buffer.follow((line) => stream.onLines([line]));
  }
}
