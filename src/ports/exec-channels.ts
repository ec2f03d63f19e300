/**
 * ExecChannels: the live byte streams of an interactive command between the replica that holds the
 * client's WebSocket and the worker that runs the command. Fire-and-forget pub/sub: the task row,
 * not the channel, holds the outcome. In-memory for `dev`, Redis pub/sub in a cluster.
 */
export type ChannelMessage =
  | { type: 'started' }
  | { type: 'stdout' | 'stderr' | 'stdin'; data: string }
  | { type: 'stdin_end' }
  | { type: 'exit'; exit_code: number; timed_out: boolean }
  // Worker logs, relayed from the replica holding the worker's agent channel to the one serving
  // the API request (see src/server/agent/log-relay.ts). Workers can publish none of these.
  | { type: 'logs_request'; reply: string; since: number | null; follow: boolean; limit: number }
  | { type: 'logs_accepted' }
  | { type: 'log_lines'; lines: Record<string, unknown>[] }
  | { type: 'logs_end'; reason: string | null }
  | { type: 'logs_stop' }
  /** The worker's certificates were revoked: the replica holding its channel closes it. */
  | { type: 'revoked' };

export interface ExecChannels {
  readonly kind: string;
  publish(channel: string, message: ChannelMessage): Promise<void>;
  /** Resolves once the subscription is active, so nothing published afterwards is missed. */
  subscribe(channel: string, listener: (message: ChannelMessage) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export const execOutput = (taskId: string) => `exec:${taskId}:out`;
export const execInput = (taskId: string) => `exec:${taskId}:in`;
