/**
 * Reaching the guest agent through Firecracker's vsock device. Firecracker listens on the Unix
 * socket `uds_path` (definition `Vsock`); a host-initiated connection is a connection to that socket
 * followed by the line `CONNECT <port>\n`; Firecracker answers `OK <host port>\n` once the guest
 * accepted on that vsock port (and closes the connection when nothing listens there). After the
 * answer the stream is the guest agent's.
 *
 * `GuestConnection` is what the driver needs from the guest agent client; the default factory
 * (`guestAgentConnection`) speaks the guest agent protocol (src/adapters/vmm/guest/) over the stream,
 * and tests can plug in another `GuestConnectionFactory`.
 */
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { AetheriumError } from '../../../domain/index.ts';
import type { ExecResult } from '../../../domain/index.ts';
import type { ExecRequest } from '../../../ports/vm-driver.ts';
import { GuestClient } from '../guest/guest-client.ts';

/** The vsock port the guest agent listens on (overridable per driver). */
export const DEFAULT_AGENT_PORT = 10_789;

export interface GuestConnection {
  /** Runs one command in the guest, with the semantics of VmDriver.exec (timeout, signal, streaming). */
  exec(request: ExecRequest): Promise<ExecResult>;
  /** Closes the stream; a command still running is abandoned (the guest agent kills it). */
  close(): void;
}

export interface GuestConnectionContext {
  vmId: string;
  /** Budget for the guest agent's handshake on the stream. */
  timeoutMs: number;
  /** The exec's signal: aborts the handshake too. */
  signal?: AbortSignal;
}

/** Wraps a connected byte stream (after the CONNECT handshake) into a guest agent client. */
export type GuestConnectionFactory = (
  stream: Duplex,
  context: GuestConnectionContext,
) => GuestConnection | Promise<GuestConnection>;

/** The default: the HELLO exchange of the guest agent protocol over the stream, then one GuestClient per connection. */
export const guestAgentConnection: GuestConnectionFactory = async (stream, { vmId, timeoutMs, signal }) => {
  const client = await GuestClient.fromStream(stream, {
    timeoutMs,
    signal,
    label: `vsock stream of VM ${JSON.stringify(vmId)}`,
  });
  return {
    exec: (request) =>
      client.exec({
        command: request.command,
        args: request.args ?? [],
        env: request.env ?? {},
        cwd: request.cwd ?? '/',
        stdin: request.stdin,
        stdinStream: request.stdinStream,
        timeout_ms: request.timeout_ms,
        signal: request.signal,
        onStdout: request.onStdout,
        onStderr: request.onStderr,
      }),
    close: () => client.close(),
  };
};

/**
 * Connects to the vsock socket and performs the CONNECT handshake. Resolves with the socket,
 * positioned right after the `OK` line; rejects when Firecracker refuses or says nothing in time.
 */
export function connectVsock(udsPath: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = connect(udsPath);
    let buffered = Buffer.alloc(0);
    let done = false;
    const finish = (err: Error | null): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      if (err) {
        socket.destroy();
        reject(err);
        return;
      }
      resolve(socket);
    };
    const timer = setTimeout(
      () => finish(vsockError(`no answer to CONNECT ${port} within ${timeoutMs} ms on ${udsPath}`)),
      timeoutMs,
    );
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      const nl = buffered.indexOf(0x0a);
      if (nl < 0) {
        if (buffered.length > 256) finish(vsockError(`unexpected answer to CONNECT ${port} on ${udsPath}`));
        return;
      }
      const line = buffered.subarray(0, nl).toString('utf8').trim();
      const rest = buffered.subarray(nl + 1);
      if (!/^OK \d+$/.test(line)) {
        finish(vsockError(`Firecracker refused CONNECT ${port} on ${udsPath}: ${JSON.stringify(line)}`));
        return;
      }
      socket.pause();
      if (rest.length > 0) socket.unshift(rest);
      finish(null);
    };
    socket.on('data', onData);
    socket.once('connect', () => socket.write(`CONNECT ${port}\n`));
    socket.once('error', (err: NodeJS.ErrnoException) =>
      finish(vsockError(`cannot connect to the vsock socket ${udsPath}: ${err.code ?? err.message}`)),
    );
    socket.once('close', () =>
      finish(
        vsockError(
          `the vsock socket ${udsPath} closed the connection to port ${port} (no guest agent listening there yet?)`,
        ),
      ),
    );
  });
}

function vsockError(message: string): AetheriumError {
  return new AetheriumError('driver_failed', message);
}
