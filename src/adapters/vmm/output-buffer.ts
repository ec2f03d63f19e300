/**
 * Collects one output stream of a command: every chunk is streamed to the callback as it arrives,
 * and at most `capBytes` bytes are kept for the result. What is dropped is counted and noted at the
 * end of the kept text, so that a truncated result is never mistaken for the whole output.
 *
 * The kept bytes stay bytes until the end: `finish()` gives them as text when they are valid UTF-8
 * without NUL, and otherwise as a lossy preview plus the exact bytes in base64 (see `ExecResult`).
 * Live chunks go to the callback as text (a lossy decoding for bytes that are not UTF-8).
 */
import { StringDecoder } from 'node:string_decoder';
import { type CapturedOutput, captureOutput } from '../../domain/index.ts';

export const MAX_OUTPUT_BYTES = 10 * 1024 * 1024;

export class OutputBuffer {
  private readonly kept: Buffer[] = [];
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
      this.kept.push(chunk);
      this.keptBytes += chunk.length;
    } else {
      if (room > 0) {
        this.kept.push(chunk.subarray(0, room));
        this.keptBytes += room;
      }
      this.droppedBytes += chunk.length - Math.max(room, 0);
    }
  }

  /** Flushes the live decoder and returns what was kept; call once, when the stream has ended. */
  finish(): CapturedOutput {
    if (this.onChunk) this.emit(this.streamDecoder.end());
    const output = captureOutput(Buffer.concat(this.kept, this.keptBytes));
    if (this.droppedBytes > 0) {
      output.text += `\n[aetherium: ${this.streamName} truncated: kept the first ${this.capBytes} bytes, dropped ${this.droppedBytes} more]\n`;
    }
    return output;
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
