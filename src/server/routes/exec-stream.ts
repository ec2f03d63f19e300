/**
 * GET /api/v1/vms/{id}/exec/stream (WebSocket): one interactive command.
 *
 *   client → { "type": "start", "command", "args", "env", "cwd", "timeout" }   (first message)
 *            { "type": "stdin", "data": "…" }  { "type": "stdin_end" }  { "type": "cancel" }
 *   server → { "type": "started", "task_id" }  { "type": "stdout" | "stderr", "data": "…" }
 *            { "type": "exit", "exit_code", "timed_out" }  then close 1000
 *            { "type": "error", "code", "message" }      then close 4000 + the code's status
 *
 * The command runs as a `vm:execute` task on the VM's worker; its bytes travel over ExecChannels.
 * Closing the socket before the exit cancels the command. The start message has the limits of
 * `POST /vms/{id}/exec` and the same answers: a user's mistake is 4400 (bad input: a NUL or an
 * unpaired surrogate in a string, a timeout under 1 ms, an environment over its size, a cwd that
 * is not in the VM), 4404 (no such VM) or 4409 (VM not running, or found stopping by its worker;
 * command cancelled); 1011 is only for a fault on our side, and its message never carries the text
 * of an engine's error. Live `data` is text (a lossy decoding of bytes that are not UTF-8); the
 * task's result has the exact bytes (`stdout_base64`, see ExecResult). Anything wrong with the URL
 * itself is refused at the handshake, with an HTTP 400 in the API's error format.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { WebSocket } from 'ws';
import * as z from 'zod';
import { AetheriumError, isFinal, isTransientEngineError, newId } from '../../domain/index.ts';
import { type ChannelMessage, execInput, execOutput } from '../../ports/exec-channels.ts';
import type { ExecChannels } from '../../ports/exec-channels.ts';
import type { ApiDeps } from '../api-deps.ts';
import { findUnstorable, unstorableError } from '../input-guard.ts';
import { execPayloadOf, execStartMessage } from '../../contract/requests.ts';
import { fastifySchema } from '../../contract/routes.ts';
import { upgradeRequired } from './upgrade-required.ts';
import { closeCodeOf, commandFailure } from '../task-failure.ts';

const clientMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdin'), data: z.string() }).strict(),
  z.object({ type: z.literal('stdin_end') }).strict(),
  z.object({ type: z.literal('cancel') }).strict(),
]);

const CLOSE = { badMessage: 4400 } as const;

/** A close reason is at most 123 bytes of UTF-8: cut at a character, never inside one. */
function closeReason(message: string): string {
  let reason = message.slice(0, 120);
  while (Buffer.byteLength(reason, 'utf8') > 123) reason = reason.slice(0, -1);
  return reason;
}

/** What an error the route did not expect becomes: a code of ours and a message without engine text. */
function asApiError(err: unknown, log: { error: (obj: object, msg: string) => void }): AetheriumError {
  if (err instanceof AetheriumError) return err;
  if (isTransientEngineError(err))
    return new AetheriumError('unavailable', 'a backing engine (database or queue) is unavailable right now; retry');
  log.error({ err }, 'interactive exec failed');
  return new AetheriumError('internal', 'internal error; the server log has the details');
}

export function execStreamRoutes(deps: ApiDeps, channels: ExecChannels): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/vms/:id/exec/stream',
      {
        websocket: true,
        schema: fastifySchema('execStream'),
        preHandler: upgradeRequired,
      },
      (socket, request) => {
        const ws = socket as WebSocket;
        const vmId = (request.params as { id: string }).id;
        const send = (message: object) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
        const fail = (code: number, error: { code: string; message: string }) => {
          send({ type: 'error', ...error });
          ws.close(code, closeReason(error.message));
        };
        let taskId: string | null = null;
        let started = false;
        let exited = false;
        const pendingInput: ChannelMessage[] = [];
        let unsubscribe: (() => Promise<void>) | null = null;

        const forward = (message: ChannelMessage) => {
          if (message.type === 'started') {
            started = true;
            for (const input of pendingInput.splice(0)) void channels.publish(execInput(taskId!), input);
            return;
          }
          if (message.type === 'exit') {
            exited = true;
            send(message);
            ws.close(1000, 'exited');
            return;
          }
          if (message.type === 'stdout' || message.type === 'stderr') send(message);
        };

        ws.on('message', async (raw: Buffer) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(raw.toString());
          } catch {
            return fail(CLOSE.badMessage, { code: 'bad_request', message: 'messages are JSON objects with a "type"' });
          }
          if (!taskId) {
            // What no engine can store never reaches one (as input-guard.ts does for HTTP routes).
            const unstorable = findUnstorable(parsed);
            if (unstorable) {
              const { code, message } = unstorableError('message', unstorable);
              return fail(CLOSE.badMessage, { code, message });
            }
            const start = execStartMessage.safeParse(parsed);
            if (!start.success)
              return fail(CLOSE.badMessage, {
                code: 'validation_failed',
                message: `the first message must be {"type":"start","command":…}: ${start.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; ')}`,
              });
            const { type: _type, ...exec } = start.data;
            taskId = newId();
            try {
              // Listen before the task exists, so not a byte of output is missed.
              unsubscribe = await channels.subscribe(execOutput(taskId), forward);
              await deps.vms.exec(vmId, { ...execPayloadOf(exec), stream: true }, taskId);
            } catch (err) {
              await unsubscribe?.();
              const e = asApiError(err, request.log);
              return fail(closeCodeOf(e.code), { code: e.code, message: e.message });
            }
            send({ type: 'started', task_id: taskId });
            // A task that ends without an exit on the channel (VM gone, cancelled) still answers.
            void deps.tasks.wait(taskId, 24 * 3600 * 1000).then((task) => {
              if (exited || !task || !isFinal(task.status)) return;
              if (task.status === 'completed') {
                // The exit message was lost on the way (the channel is best effort): the row has it.
                exited = true;
                const result = task.type === 'vm:execute' ? task.result : null;
                send({ type: 'exit', exit_code: result?.exit_code, timed_out: result?.timed_out ?? false });
                return ws.close(1000, 'exited');
              }
              // The worker's reason, with its code: a cwd that is not there is 4400, a VM it found
              // stopping 4409; only a failure of the driver is 1011.
              const e = commandFailure(task);
              fail(closeCodeOf(e.code), { code: e.code, message: e.message });
            });
            return;
          }
          const message = clientMessage.safeParse(parsed);
          if (!message.success)
            return fail(CLOSE.badMessage, {
              code: 'validation_failed',
              message: 'expected {"type":"stdin","data":…}, {"type":"stdin_end"} or {"type":"cancel"}',
            });
          if (message.data.type === 'cancel') {
            // Cancelling a command that just ended is a conflict: the exit is on its way anyway.
            await deps.tasks.cancel(taskId).catch(() => undefined);
            return;
          }
          if (started) await channels.publish(execInput(taskId), message.data);
          else pendingInput.push(message.data);
        });

        ws.on('close', () => {
          void unsubscribe?.();
          // The client left before the command ended: stop the command rather than leave it running.
          // A command that ended meanwhile cannot be cancelled; that conflict is the expected answer.
          if (taskId && !exited)
            void deps.tasks.cancel(taskId, 'the interactive client disconnected').catch(() => undefined);
        });
      },
    );
  };
}
