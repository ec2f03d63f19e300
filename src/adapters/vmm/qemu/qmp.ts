/**
 * A one-shot QMP client: connect to the VM's QMP unix socket, negotiate capabilities, run one
 * command, disconnect. QEMU serves one QMP client at a time, so nothing stays connected.
 */
import { connect, type Socket } from 'node:net';

export class QmpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QmpError';
  }
}

/**
 * Runs `command` and resolves with its `return` value. For `quit`, QEMU may close the socket before
 * answering: that counts as success.
 */
export function qmpCommand(
  path: string,
  command: string,
  args?: Record<string, unknown>,
  timeoutMs = 5_000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let stage: 'greeting' | 'capabilities' | 'command' = 'greeting';
    let done = false;
    const finish = (err: Error | null, value?: unknown): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    const timer = setTimeout(
      () => finish(new QmpError(`QMP ${command} on ${path} timed out after ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.setEncoding('utf8');
    socket.on('error', (err) => finish(new QmpError(`QMP ${path}: ${err.message}`)));
    socket.on('close', () => {
      if (stage === 'command' && command === 'quit') finish(null, {});
      else finish(new QmpError(`QMP ${path} closed before ${command} completed`));
    });
    readMessages(
      socket,
      (msg) => {
        if ('event' in msg) return;
        if (stage === 'greeting' && 'QMP' in msg) {
          stage = 'capabilities';
          socket.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
        } else if (stage === 'capabilities' && 'return' in msg) {
          stage = 'command';
          socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
        } else if (stage === 'command' && 'return' in msg) {
          finish(null, msg.return);
        } else if ('error' in msg) {
          const error = msg.error as { class?: string; desc?: string };
          finish(new QmpError(`QMP ${command}: ${error.class ?? 'error'}: ${error.desc ?? ''}`));
        }
      },
      () => finish(new QmpError(`QMP ${path}: unparsable line`)),
    );
  });
}

/** `query-status`: e.g. { running: true, status: 'running' }. */
export async function qmpQueryStatus(path: string, timeoutMs = 3_000): Promise<{ running: boolean; status: string }> {
  return (await qmpCommand(path, 'query-status', undefined, timeoutMs)) as { running: boolean; status: string };
}

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export interface QmpEventStream {
  close(): void;
}

/**
 * A long-lived QMP connection that only listens, on a monitor of its own (QEMU serves one client
 * per monitor, so the one-shot commands above keep theirs). After capabilities negotiation QEMU
 * sends it every event (SHUTDOWN, GUEST_PANICKED …). `onClose` is called once when the connection
 * ends, whichever side ended it: QEMU exiting closes it at once, which is how a death is heard
 * before the next poll. A monitor that cannot be reached (an older VM without one) just closes.
 */
export function qmpEvents(
  path: string,
  handlers: { onEvent: (event: QmpEvent) => void; onClose: () => void },
): QmpEventStream {
  const socket = connect(path);
  let closed = false;
  const finish = (): void => {
    if (closed) return;
    closed = true;
    socket.destroy();
    handlers.onClose();
  };
  socket.setEncoding('utf8');
  socket.on('error', finish);
  socket.on('close', finish);
  readMessages(
    socket,
    (msg) => {
      if ('QMP' in msg) socket.write(`${JSON.stringify({ execute: 'qmp_capabilities' })}\n`);
      else if (typeof msg.event === 'string')
        handlers.onEvent({ event: msg.event, data: msg.data as Record<string, unknown> | undefined });
    },
    () => undefined, // one bad line does not end the watch
  );
  return { close: finish };
}

/**
 * QMP speaks one JSON object per line: each goes to `onMessage`, a line that does not parse to
 * `onBadLine`. Reading stops once the socket is destroyed (a caller that finished).
 */
function readMessages(socket: Socket, onMessage: (msg: Record<string, unknown>) => void, onBadLine: () => void): void {
  let buffer = '';
  socket.on('data', (chunk: string) => {
    buffer += chunk;
    let newline: number;
    while (!socket.destroyed && (newline = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (!line) continue;
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(line) as Record<string, unknown>;
      } catch {
        onBadLine();
        continue;
      }
      onMessage(msg);
    }
  });
}
