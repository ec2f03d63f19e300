/**
 * One command over the interactive exec WebSocket (`GET /api/v1/vms/{id}/exec/stream`):
 *
 *   → { type: 'start', command, args, env, cwd, timeout }   ← { type: 'started', task_id }
 *   → { type: 'stdin', data } … { type: 'stdin_end' }       ← { type: 'stdout' | 'stderr', data } …
 *   → { type: 'cancel' }                                     ← { type: 'exit', exit_code, timed_out }, close 1000
 *                                                            ← { type: 'error', code, message }, close 4000 + status
 *
 * `timeoutMs` is the command's timeout: it goes to the worker as the start message's `timeout`, so
 * the worker kills the command and everything it started, and the exit says `timed_out`. Should
 * no exit come within `timeoutMs` + a grace (a worker or a link that went silent), the SDK cancels
 * the command itself, closes the socket and resolves the same way with what it got so far. There is
 * no default timeout: a command may stream for as long as it needs.
 */
import { EXEC_LIMITS } from '../contract/requests.ts';
import { AbortError, type ApiError, errorOf, UnavailableError, ValidationError } from './errors.ts';
import { isErrorCode } from '../domain/errors.ts';
import type { ApiSocket } from './socket.ts';
import type { Transport } from './transport.ts';
import type { ExecRequest } from './types.ts';

export type StdinSource = string | Uint8Array | AsyncIterable<string | Uint8Array>;

export interface ExecOptions {
  args?: ExecRequest['args'];
  env?: ExecRequest['env'];
  cwd?: ExecRequest['cwd'];
  /** Input for the command; its end is sent after it (without `stdin`, the command reads an empty input). */
  stdin?: StdinSource;
  /** Each piece of standard output as it arrives (text: bytes that are not UTF-8 arrive as U+FFFD). */
  onStdout?: (data: string) => void;
  onStderr?: (data: string) => void;
  /** Called once the command runs, with its task id. */
  onStarted?: (taskId: string) => void;
  /** The command's timeout in ms: the worker kills it (and all it started). Default: none. */
  timeoutMs?: number;
  /** How long past `timeoutMs` the SDK waits for the worker's exit before it cancels by itself (default 5 s). */
  graceMs?: number;
  /** Aborts the command (it is cancelled on its worker) and rejects with an AbortError. */
  signal?: AbortSignal;
  /** Keep the output in the result (default true); turn off for long streams read through the callbacks. */
  collectOutput?: boolean;
}

export interface ExecResult {
  /** The command's exit code; null when it had none (cancelled by the SDK's safety net). */
  exitCode: number | null;
  stdout: string;
  stderr: string;
  /** The command ran out of its `timeoutMs` and was killed, with everything it started. */
  timedOut: boolean;
  /** The command's `vm:execute` task (its result keeps the exact bytes: `GET /tasks/{id}`). */
  taskId: string | null;
  durationMs: number;
}

const CHUNK = 64 * 1024;
const utf8 = new TextDecoder();
const HIGH_WATER = 1024 * 1024;

export async function execStream(
  transport: Transport,
  vmId: string,
  command: string,
  options: ExecOptions = {},
): Promise<ExecResult> {
  const { timeoutMs, signal } = options;
  if (timeoutMs !== undefined && !(timeoutMs >= EXEC_LIMITS.minTimeout * 1000))
    throw new ValidationError('validation_failed', `timeoutMs must be at least ${EXEC_LIMITS.minTimeout * 1000} ms`, {
      details: [{ path: '/timeout', message: 'too small' }],
    });
  if (signal?.aborted) throw new AbortError('the command was aborted before it started');
  const collect = options.collectOutput ?? true;
  const startedAt = Date.now();
  let stdout = '';
  let stderr = '';
  let taskId: string | null = null;

  return new Promise<ExecResult>((resolve, reject) => {
    let ws: ApiSocket | null = null;
    let done = false;
    let safetyNet: ReturnType<typeof setTimeout> | null = null;
    const result = (exitCode: number | null, timedOut: boolean): ExecResult => ({
      exitCode,
      stdout,
      stderr,
      timedOut,
      taskId,
      durationMs: Date.now() - startedAt,
    });
    const finish = (outcome: { ok: ExecResult } | { err: ApiError }) => {
      if (done) return;
      done = true;
      if (safetyNet) clearTimeout(safetyNet);
      signal?.removeEventListener('abort', onAbort);
      if ('ok' in outcome) resolve(outcome.ok);
      else reject(outcome.err);
    };
    const send = (message: object) => {
      if (ws?.isOpen) ws.send(JSON.stringify(message));
    };
    /** Cancels the command on its worker (and closing the socket would do so too). */
    const cancel = () => {
      send({ type: 'cancel' });
      ws?.close(1000, 'cancelled by the client');
    };
    const onAbort = () => {
      cancel();
      finish({
        err: new AbortError('the command was aborted; it is cancelled on its worker', { details: { task_id: taskId } }),
      });
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    const onMessage = (message: Record<string, unknown>) => {
      if (done) return;
      switch (message.type) {
        case 'started':
          taskId = typeof message.task_id === 'string' ? message.task_id : null;
          if (taskId) options.onStarted?.(taskId);
          void feed().catch((err: unknown) => {
            cancel();
            finish({
              err:
                err instanceof Error && 'code' in err
                  ? (err as ApiError)
                  : new ValidationError('bad_request', `reading stdin failed: ${(err as Error).message}`),
            });
          });
          return;
        case 'stdout': {
          const data = String(message.data ?? '');
          if (collect) stdout += data;
          options.onStdout?.(data);
          return;
        }
        case 'stderr': {
          const data = String(message.data ?? '');
          if (collect) stderr += data;
          options.onStderr?.(data);
          return;
        }
        case 'exit':
          finish({
            ok: result(typeof message.exit_code === 'number' ? message.exit_code : null, message.timed_out === true),
          });
          return;
        case 'error': {
          const code = typeof message.code === 'string' && isErrorCode(message.code) ? message.code : 'internal';
          finish({
            err: errorOf(code, String(message.message ?? 'the command failed'), {
              details: { task_id: taskId },
              request: `GET /api/v1/vms/${vmId}/exec/stream`,
            }),
          });
          return;
        }
      }
    };

    /** Sends the input, then its end; waits while the socket's buffer is full. */
    const feed = async () => {
      const input = options.stdin;
      if (input !== undefined) {
        if (typeof input === 'string' || input instanceof Uint8Array) await write(input);
        else
          for await (const chunk of input) {
            if (done) return;
            await write(chunk);
          }
      }
      if (!done) send({ type: 'stdin_end' });
    };
    const write = async (chunk: string | Uint8Array) => {
      const text = typeof chunk === 'string' ? chunk : utf8.decode(chunk);
      for (let at = 0; at < text.length; at += CHUNK) {
        while (ws && ws.bufferedAmount > HIGH_WATER && !done) await new Promise((r) => setTimeout(r, 10));
        if (done) return;
        send({ type: 'stdin', data: text.slice(at, at + CHUNK) });
      }
    };

    transport
      .openSocket(`/vms/${encodeURIComponent(vmId)}/exec/stream`, onMessage, { signal })
      .then((socket) => {
        ws = socket;
        if (done) return void socket.close(1000);
        socket.onClose((code, reason) => {
          if (done) return;
          finish({
            err: new UnavailableError(
              'unreachable',
              `the exec stream closed before the command ended (${code}${reason.length ? `: ${reason}` : ''}); the command is cancelled on its worker`,
              { details: { task_id: taskId } },
            ),
          });
        });
        send({
          type: 'start',
          command,
          args: options.args ?? [],
          env: options.env ?? {},
          ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
          ...(timeoutMs === undefined ? {} : { timeout: timeoutMs / 1000 }),
        });
        if (timeoutMs !== undefined) {
          safetyNet = setTimeout(
            () => {
              cancel();
              finish({ ok: result(null, true) });
            },
            timeoutMs + (options.graceMs ?? 5000),
          );
        }
      })
      .catch((err: ApiError) => finish({ err }));
  });
}
