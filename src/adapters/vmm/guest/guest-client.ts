/**
 * One connection to the guest agent (a virtio-serial port's unix socket on the host, or any connected
 * stream such as a Firecracker vsock connection): the hello handshake, then any number of concurrent
 * execs. Never hangs: every wait has a timeout, and a malformed frame from the guest fails only the
 * exec it belongs to (a broken framing, which cannot be attributed, closes the connection and fails
 * the execs still running on it).
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AetheriumError, invalid, outputFields } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import { OutputBuffer } from '../output-buffer.ts';
import { TIMEOUT_EXIT_CODE, abortError } from '../process-tree.ts';
import {
  type ExitMessage,
  type Frame,
  FrameDecoder,
  FrameType,
  type HelloMessage,
  MAX_DATA_CHUNK,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeData,
  decodeJson,
  encodeData,
  encodeFrame,
  encodeJson,
  salvageId,
} from './protocol.ts';

/** How long an exec waits for the agent to say it started (or refused) the command. */
const START_TIMEOUT_MS = 15_000;
/** After a kill for an abort, how long to wait for the exit before rejecting anyway. */
const KILL_SETTLE_MS = 1_500;

export interface GuestExecRequest {
  command: string;
  args: string[];
  env: Record<string, string>;
  cwd: string;
  stdin?: string;
  stdinStream?: AsyncIterable<string | Buffer>;
  timeout_ms?: number;
  signal?: AbortSignal;
  onStdout?: (chunk: string) => void;
  onStderr?: (chunk: string) => void;
}

interface PendingExec {
  stdout: OutputBuffer;
  stderr: OutputBuffer;
  started: boolean;
  finish: (outcome: { exit?: ExitMessage; error?: Error }) => void;
}

export class GuestClient {
  readonly hello: HelloMessage;
  private readonly decoder = new FrameDecoder();
  private readonly execs = new Map<number, PendingExec>();
  private nextId = 1;
  private closed = false;
  private closeReason: Error | null = null;
  private shutdownWaiter: (() => void) | null = null;
  private readonly closeListeners: Array<() => void> = [];
  /** Error frames without an exec id (e.g. the answer to garbage), newest last; for diagnostics and tests. */
  readonly sessionErrors: Array<{ code: string; message: string }> = [];

  private constructor(
    private readonly socket: Socket | Duplex,
    hello: HelloMessage,
    leftover: Frame[],
  ) {
    this.hello = hello;
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('close', () =>
      this.teardown(new AetheriumError('driver_failed', 'the connection to the guest agent was lost')),
    );
    socket.on('error', () => {});
    for (const frame of leftover) this.onFrame(frame);
  }

  /**
   * Connects to the agent socket and completes the hello exchange. Resends the hello every second
   * (the agent may not have opened its port yet); rejects after `timeoutMs`.
   */
  static connect(path: string, options: { timeoutMs: number; signal?: AbortSignal }): Promise<GuestClient> {
    return GuestClient.handshake(connect(path), `socket ${path}`, options);
  }

  /**
   * The same hello exchange over a stream that is already connected (e.g. a vsock stream after
   * Firecracker's `CONNECT`/`OK`); the client owns the stream from then on and destroys it on failure.
   */
  static fromStream(
    stream: Socket | Duplex,
    options: { timeoutMs: number; signal?: AbortSignal; label?: string },
  ): Promise<GuestClient> {
    return GuestClient.handshake(stream, options.label ?? 'stream', options);
  }

  private static handshake(
    socket: Socket | Duplex,
    where: string,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<GuestClient> {
    return new Promise<GuestClient>((resolve, reject) => {
      const decoder = new FrameDecoder();
      let done = false;
      const finish = (err: Error | null, client?: GuestClient): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(resend);
        options.signal?.removeEventListener('abort', onAbort);
        socket.removeListener('data', onData);
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve(client as GuestClient);
      };
      const sendHello = (): void => {
        if (!socket.destroyed && socket.writable)
          socket.write(encodeJson(FrameType.HELLO, { version: PROTOCOL_VERSION }));
      };
      const onData = (chunk: Buffer): void => {
        let frames: Frame[];
        try {
          frames = decoder.push(chunk);
        } catch (err) {
          finish(err as Error);
          return;
        }
        const index = frames.findIndex((f) => f.type === FrameType.HELLO);
        if (index < 0) return;
        let hello: HelloMessage;
        try {
          hello = decodeJson<HelloMessage>((frames[index] as Frame).payload);
        } catch (err) {
          finish(err as Error);
          return;
        }
        if (hello.version !== PROTOCOL_VERSION) {
          finish(
            new AetheriumError(
              'driver_failed',
              `guest agent speaks protocol ${String(hello.version)}, this host ${PROTOCOL_VERSION}: rebuild the image`,
            ),
          );
          return;
        }
        // Frames after the hello (other hello answers are dropped) go to the client.
        finish(
          null,
          new GuestClient(
            socket,
            hello,
            frames.slice(index + 1).filter((f) => f.type !== FrameType.HELLO),
          ),
        );
      };
      const onAbort = (): void => finish(abortError(options.signal as AbortSignal));
      const timer = setTimeout(
        () =>
          finish(
            new AetheriumError(
              'driver_failed',
              `the guest agent did not answer on ${where} within ${options.timeoutMs} ms`,
            ),
          ),
        options.timeoutMs,
      );
      const resend = setInterval(sendHello, 1_000);
      socket.on('data', onData);
      socket.resume(); // a stream handed over paused (e.g. after the vsock handshake) must flow
      socket.once('error', (err) => finish(err));
      socket.once('close', () =>
        finish(new AetheriumError('driver_failed', `the guest agent ${where} closed during the handshake`)),
      );
      if (socket.destroyed)
        finish(new AetheriumError('driver_failed', `the guest agent ${where} closed during the handshake`));
      else if ('connecting' in socket && socket.connecting) socket.once('connect', sendHello);
      else sendHello();
      if (options.signal?.aborted) onAbort();
      else options.signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  /** Writes bytes as they are, e.g. garbage for a robustness test. */
  sendRaw(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  exec(request: GuestExecRequest): Promise<ExecResult> {
    if (request.signal?.aborted) return Promise.reject(abortError(request.signal));
    if (this.closed)
      return Promise.reject(
        this.closeReason ?? new AetheriumError('driver_failed', 'the connection to the guest agent is closed'),
      );
    const id = this.nextId++;
    const signal = request.signal;
    return new Promise<ExecResult>((resolve, reject) => {
      let timedOut = false;
      let aborted = false;
      let settled = false;
      const timers: NodeJS.Timeout[] = [];
      const pending: PendingExec = {
        stdout: new OutputBuffer('stdout', undefined, request.onStdout),
        stderr: new OutputBuffer('stderr', undefined, request.onStderr),
        started: false,
        finish: ({ exit, error }) => {
          if (settled) return;
          settled = true;
          this.execs.delete(id);
          for (const t of timers) clearTimeout(t);
          signal?.removeEventListener('abort', onAbort);
          if (aborted && signal) {
            reject(abortError(signal));
            return;
          }
          const stdout = pending.stdout.finish();
          const stderr = pending.stderr.finish();
          if (error) {
            reject(error);
            return;
          }
          const code = timedOut ? TIMEOUT_EXIT_CODE : (exit?.exit_code ?? 137);
          resolve({ exit_code: code, ...outputFields(stdout, stderr), ...(timedOut ? { timed_out: true } : {}) });
        },
      };
      const kill = (): void => {
        this.write(encodeJson(FrameType.KILL, { id, signal: 9 }));
      };
      const onAbort = (): void => {
        if (settled) return;
        aborted = true;
        kill();
        timers.push(setTimeout(() => pending.finish({}), KILL_SETTLE_MS));
      };
      this.execs.set(id, pending);
      this.write(
        encodeJson(FrameType.EXEC, {
          id,
          command: request.command,
          args: request.args,
          env: request.env,
          cwd: request.cwd,
          stdin: request.stdin !== undefined || request.stdinStream !== undefined,
        }),
      );
      const sendInput = (data: string | Buffer) => {
        const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
        for (let off = 0; off < bytes.length; off += MAX_DATA_CHUNK)
          this.write(encodeData(FrameType.STDIN, id, bytes.subarray(off, off + MAX_DATA_CHUNK)));
      };
      if (request.stdin !== undefined) {
        sendInput(request.stdin);
        this.write(encodeData(FrameType.STDIN, id, Buffer.alloc(0)));
      } else if (request.stdinStream) {
        const stream = request.stdinStream;
        void (async () => {
          for await (const chunk of stream) {
            if (settled) return;
            sendInput(chunk);
          }
          if (!settled) this.write(encodeData(FrameType.STDIN, id, Buffer.alloc(0)));
        })().catch(() => undefined);
      }
      timers.push(
        setTimeout(() => {
          if (!pending.started) {
            kill();
            pending.finish({
              error: new AetheriumError(
                'driver_failed',
                `the guest agent did not start the command within ${START_TIMEOUT_MS} ms`,
              ),
            });
          }
        }, START_TIMEOUT_MS),
      );
      if (request.timeout_ms !== undefined) {
        timers.push(
          setTimeout(() => {
            if (settled) return;
            timedOut = true;
            kill();
          }, request.timeout_ms),
        );
      }
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Asks the agent to kill its commands and sync the disks; true when it confirmed in time. */
  shutdown(timeoutMs: number): Promise<boolean> {
    if (this.closed) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.shutdownWaiter = null;
        resolve(false);
      }, timeoutMs);
      this.shutdownWaiter = () => {
        clearTimeout(timer);
        this.shutdownWaiter = null;
        resolve(true);
      };
      this.write(encodeJson(FrameType.SHUTDOWN, {}));
    });
  }

  close(): void {
    this.teardown(new AetheriumError('driver_failed', 'the connection to the guest agent was closed'));
  }

  // --- internals ---------------------------------------------------------------------------

  private write(bytes: Buffer): void {
    if (!this.closed) this.socket.write(bytes);
  }

  private teardown(reason: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.socket.destroy();
    for (const pending of [...this.execs.values()]) pending.finish({ error: reason });
    this.shutdownWaiter?.();
    for (const listener of this.closeListeners.splice(0)) listener();
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      this.teardown(
        new AetheriumError('driver_failed', `the guest agent broke the protocol: ${(err as Error).message}`),
      );
      return;
    }
    for (const frame of frames) this.onFrame(frame);
  }

  private onFrame(frame: Frame): void {
    try {
      this.handleFrame(frame);
    } catch (err) {
      // A malformed frame: fail the exec it names, if any can be told; otherwise note it.
      const id =
        frame.type === FrameType.STDOUT || frame.type === FrameType.STDERR ? undefined : salvageId(frame.payload);
      const pending = id === undefined ? undefined : this.execs.get(id);
      const message = `malformed frame (type 0x${frame.type.toString(16)}) from the guest agent: ${(err as Error).message}`;
      if (pending) pending.finish({ error: new AetheriumError('driver_failed', message) });
      else this.sessionErrors.push({ code: 'bad_frame_from_guest', message });
    }
  }

  private handleFrame(frame: Frame): void {
    switch (frame.type) {
      case FrameType.STDOUT:
      case FrameType.STDERR: {
        const { id, data } = decodeData(frame.payload);
        const pending = this.execs.get(id);
        if (pending) (frame.type === FrameType.STDOUT ? pending.stdout : pending.stderr).push(Buffer.from(data));
        return;
      }
      case FrameType.STARTED: {
        const msg = decodeJson(frame.payload);
        const pending = this.execs.get(requireId(msg));
        if (pending) pending.started = true;
        return;
      }
      case FrameType.EXIT: {
        const msg = decodeJson(frame.payload);
        const id = requireId(msg);
        if (typeof msg.exit_code !== 'number') throw new ProtocolError('exit frame without an exit_code');
        this.execs
          .get(id)
          ?.finish({ exit: { id, exit_code: msg.exit_code, signal: typeof msg.signal === 'number' ? msg.signal : 0 } });
        return;
      }
      case FrameType.ERROR: {
        const msg = decodeJson(frame.payload);
        const code = String(msg.code ?? 'error');
        const message = String(msg.message ?? '');
        const pending = typeof msg.id === 'number' ? this.execs.get(msg.id) : undefined;
        if (!pending) {
          this.sessionErrors.push({ code, message });
          return;
        }
        pending.finish({
          error:
            code === 'bad_cwd'
              ? invalid(message)
              : new AetheriumError('driver_failed', `guest agent: ${code}: ${message}`),
        });
        return;
      }
      case FrameType.SHUTDOWN:
        this.shutdownWaiter?.();
        return;
      case FrameType.HELLO:
        return; // an answer to a resent hello
      default:
        throw new ProtocolError(`unknown frame type 0x${frame.type.toString(16)}`);
    }
  }
}

function requireId(msg: Record<string, unknown>): number {
  if (typeof msg.id !== 'number' || !Number.isInteger(msg.id) || msg.id < 0)
    throw new ProtocolError('frame without a valid "id"');
  return msg.id;
}

export { encodeFrame };
