/** `vm exec` over the exec stream: output as it is produced, stdin forwarded, the command's exit code. */
import { CliError } from './api-client.ts';
import { openSocket, wsUrl } from './ws-client.ts';

export async function streamExec(
  api: string,
  vm: string,
  body: Record<string, unknown>,
  forwardStdin: boolean,
  timeout?: number,
): Promise<number> {
  let exitCode: number | null = null;
  let error: string | null = null;
  const ws = await openSocket(wsUrl(api, `/vms/${encodeURIComponent(vm)}/exec/stream`), (message) => {
    if (message.type === 'stdout') process.stdout.write(message.data);
    else if (message.type === 'stderr') process.stderr.write(message.data);
    else if (message.type === 'exit') {
      exitCode = message.exit_code;
      if (message.timed_out) process.stderr.write(`aetherium: the command timed out after ${timeout} s\n`);
    } else if (message.type === 'error') error = message.message;
  });
  const closed = new Promise<void>((resolve) => ws.on('close', () => resolve()));
  ws.send(JSON.stringify({ type: 'start', ...body }));
  const stopInput = forwardStdin
    ? pipeStdin((m) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(m)))
    : sendEnd(ws);
  // Ctrl-C cancels the command in the VM, then exits.
  const onSigint = () => {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify({ type: 'cancel' }));
  };
  process.once('SIGINT', onSigint);
  await closed;
  process.off('SIGINT', onSigint);
  stopInput();
  if (error) throw new CliError(error);
  if (exitCode === null) throw new CliError('the connection closed before the command exited');
  return exitCode;
}

function sendEnd(ws: { send(data: string): void }): () => void {
  ws.send(JSON.stringify({ type: 'stdin_end' }));
  return () => undefined;
}

function pipeStdin(send: (message: object) => void): () => void {
  const onData = (chunk: Buffer) => send({ type: 'stdin', data: chunk.toString('utf8') });
  const onEnd = () => send({ type: 'stdin_end' });
  process.stdin.on('data', onData);
  process.stdin.once('end', onEnd);
  return () => {
    process.stdin.off('data', onData);
    process.stdin.off('end', onEnd);
    process.stdin.pause();
    process.stdin.unref?.();
  };
}
