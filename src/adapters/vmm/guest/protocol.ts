/**
 * The host side of the guest agent protocol (image/agent/PROTOCOL.md), version 1.
 *
 * A frame is `<u32 big-endian length><u8 type><payload>` where length = 1 + payload length and is
 * at most MAX_FRAME. Control frames carry a JSON object; data frames (stdin/stdout/stderr) carry a
 * u32 big-endian exec id followed by raw bytes.
 */
export const PROTOCOL_VERSION = 1;
/** Largest length field (type byte + payload) either side accepts. */
export const MAX_FRAME = 1 << 20;
/** Largest data chunk the host puts in one stdin frame. */
export const MAX_DATA_CHUNK = 64 * 1024;

export const FrameType = {
  HELLO: 0x01,
  EXEC: 0x02,
  STDIN: 0x03,
  KILL: 0x04,
  SHUTDOWN: 0x05,
  STARTED: 0x10,
  STDOUT: 0x11,
  STDERR: 0x12,
  EXIT: 0x13,
  ERROR: 0x1f,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

export interface Frame {
  type: number;
  payload: Buffer;
}

export interface HelloMessage {
  version: number;
  agent?: string;
  kernel?: string;
  max_frame?: number;
}
export interface ExecMessage {
  id: number;
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  stdin: boolean;
}
export interface StartedMessage {
  id: number;
  pid: number;
}
export interface ExitMessage {
  id: number;
  exit_code: number;
  signal: number;
}
export interface ErrorMessage {
  id?: number;
  code: string;
  message: string;
}

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

export function encodeFrame(type: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  if (payload.length + 1 > MAX_FRAME)
    throw new ProtocolError(`frame of ${payload.length + 1} bytes is over the limit of ${MAX_FRAME}`);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length + 1, 0);
  header.writeUInt8(type, 4);
  return Buffer.concat([header, payload]);
}

export function encodeJson(type: number, message: object): Buffer {
  return encodeFrame(type, Buffer.from(JSON.stringify(message), 'utf8'));
}

export function encodeData(type: number, id: number, data: Buffer): Buffer {
  const idBytes = Buffer.alloc(4);
  idBytes.writeUInt32BE(id >>> 0, 0);
  return encodeFrame(type, Buffer.concat([idBytes, data]));
}

/** Splits a data payload into its exec id and bytes. */
export function decodeData(payload: Buffer): { id: number; data: Buffer } {
  if (payload.length < 4) throw new ProtocolError('data frame shorter than its exec id');
  return { id: payload.readUInt32BE(0), data: payload.subarray(4) };
}

/** Parses a JSON control payload into an object (throws ProtocolError on anything else). */
/** A frame's JSON object; the frame type says which message it is, so the caller names `T`. */
export function decodeJson<T extends object = Record<string, unknown>>(payload: Buffer): T {
  let value: unknown;
  try {
    value = JSON.parse(payload.toString('utf8'));
  } catch {
    throw new ProtocolError('malformed JSON payload');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ProtocolError('JSON payload is not an object');
  return value as T;
}

/** Best effort: the exec id of a control payload that failed to parse, so that only that exec fails. */
export function salvageId(payload: Buffer): number | undefined {
  const match = /"id"\s*:\s*(\d{1,10})/.exec(payload.subarray(0, 256).toString('latin1'));
  return match ? Number(match[1]) : undefined;
}

/**
 * Reassembles frames from a byte stream. A length over MAX_FRAME (or 0) means the stream can no
 * longer be trusted: `push` throws a ProtocolError and the caller drops the connection.
 */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length === 0 || length > MAX_FRAME)
        throw new ProtocolError(`invalid frame length ${length} (limit ${MAX_FRAME})`);
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      frames.push({ type: whole.readUInt8(4), payload: whole.subarray(5) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0] && this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all.subarray(0, n);
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length ? [rest] : [];
    this.buffered = rest.length;
    return out;
  }
}
