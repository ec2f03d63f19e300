/**
 * ExecChannels: the live byte streams of an interactive command between the replica that holds the
 * client's WebSocket and the worker that runs the command. Fire-and-forget pub/sub: the task row,
 * not the channel, holds the outcome. In-memory for `dev`, Redis pub/sub in a cluster.
 */
export type ChannelMessage =
  | { type: 'started' }
  | { type: 'stdout' | 'stderr' | 'stdin'; data: string }
  | { type: 'stdin_end' }
  | { type: 'exit'; exit_code: number; timed_out: boolean };

export interface ExecChannels {
  readonly kind: string;
  publish(channel: string, message: ChannelMessage): Promise<void>;
  /** Resolves once the subscription is active, so nothing published afterwards is missed. */
  subscribe(channel: string, listener: (message: ChannelMessage) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export const execOutput = (taskId: string) => `exec:${taskId}:out`;
export const execInput = (taskId: string) => `exec:${taskId}:in`;
