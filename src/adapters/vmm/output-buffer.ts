/**
 * Collects one output stream of a command: every chunk is streamed to the callback as it arrives,
 * and at most `capBytes` bytes are kept for the result. What is dropped is counted and noted at the
 * end of the kept text, so that a truncated result is never mistaken for the whole output.
 */
import { StringDecoder } from 'node:string_decoder';

export const MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

export class OutputBuffer {
  private readonly kept: string[] = [];
  private readonly keptDecoder = new StringDecoder('utf8');
  private readonly streamDecoder = new StringDecoder('utf8');
  private keptBytes = 0;
  private droppedBytes = 0;

  constructor(
    private readonly streamName: 'stdout' | 'stderr',
    private readonly capBytes: number = MAX_OUTPUT_BYTES,
    private readonly onChunk?: (chunk: string) => void,
  ) {}

  push(chunk: Buffer): void {
    if (this.onChunk) this.emit(this.streamDecoder.write(chunk));
    const room = this.capBytes - this.keptBytes;
    if (room >= chunk.length) {
      this.kept.push(this.keptDecoder.write(chunk));
      this.keptBytes += chunk.length;
    } else {
      if (room > 0) {
        this.kept.push(this.keptDecoder.write(chunk.subarray(0, room)));
        this.keptBytes += room;
      }
      this.droppedBytes += chunk.length - Math.max(room, 0);
    }
  }

  /** Flushes the decoders; call once, when the stream has ended. */
  finish(): string {
    if (this.onChunk) this.emit(this.streamDecoder.end());
    this.kept.push(this.keptDecoder.end());
    let text = this.kept.join('');
    if (this.droppedBytes > 0) {
      text += `\n[aetherium: ${this.streamName} truncated: kept the first ${this.capBytes} bytes, dropped ${this.droppedBytes} more]\n`;
    }
    return text;
  }

  get truncated(): boolean {
    return this.droppedBytes > 0;
  }

  private emit(text: string): void {
    if (text === '') return;
    try {
      this.onChunk?.(text);
    } catch {
      // A failing listener must not break the command or lose the collected output.
    }
  }
}
