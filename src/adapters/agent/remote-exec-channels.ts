/**
 * ExecChannels over the agent channel: a worker's side of interactive commands. Output goes to the
 * replica as `publish` frames (kept in order across a reconnection), which puts it on the
 * cluster's bus; stdin comes back as `message` frames for the channels the worker subscribed to.
 * The replica allows only the channels of tasks this worker runs.
 */
import type { ChannelMessage, ExecChannels } from '../../ports/exec-channels.ts';
import type { AgentConnection } from './agent-connection.ts';

export class RemoteExecChannels implements ExecChannels {
  readonly kind = 'agent';
  private readonly listeners = new Map<string, Set<(message: ChannelMessage) => void>>();

  constructor(private readonly connection: AgentConnection) {
    connection.on('message', (frame) => {
      for (const listener of this.listeners.get(frame.channel) ?? []) listener(frame.message);
    });
    connection.onConnect(async () => {
      for (const channel of this.listeners.keys()) await connection.hookCall('subscribeChannel', [channel]);
    });
  }

  async publish(channel: string, message: ChannelMessage): Promise<void> {
    this.connection.send({ t: 'publish', channel, message });
  }

  async subscribe(channel: string, listener: (message: ChannelMessage) => void): Promise<() => Promise<void>> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      try {
        await this.connection.call('subscribeChannel', [channel]);
      } catch (err) {
        this.listeners.delete(channel);
        throw err;
      }
    }
    set.add(listener);
    return async () => {
      const current = this.listeners.get(channel);
      current?.delete(listener);
      if (current && current.size === 0) {
        this.listeners.delete(channel);
        await this.connection.call('unsubscribeChannel', [channel]).catch(() => undefined);
      }
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
