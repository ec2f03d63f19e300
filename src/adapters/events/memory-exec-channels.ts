/** In-process ExecChannels for the embedded mode. */
import { EventEmitter } from 'node:events';
import type { ChannelMessage, ExecChannels } from '../../ports/exec-channels.ts';

export class MemoryExecChannels implements ExecChannels {
  readonly kind = 'memory';
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  async publish(channel: string, message: ChannelMessage): Promise<void> {
    this.emitter.emit(channel, message);
  }

  async subscribe(channel: string, listener: (message: ChannelMessage) => void): Promise<() => Promise<void>> {
    this.emitter.on(channel, listener);
    return async () => {
      this.emitter.off(channel, listener);
    };
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}
