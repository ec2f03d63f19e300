/**
 * GET /api/v1/vms/{id}/exec/stream (WebSocket): one interactive command.
 *
 *   client → { "type": "start", "command", "args", "env", "cwd", "timeout" }   (first message)
 *            { "type": "stdin", "data": "…" }  { "type": "stdin_end" }  { "type": "cancel" }
 *   server → { "type": "started", "task_id" }  { "type": "stdout" | "stderr", "data": "…" }
 *            { "type": "exit", "exit_code", "timed_out" }  then close 1000
 *            { "type": "error", "code", "message" }      then close 4400 / 4404 / 4409 / 1011
 *
 * The command runs as a `vm:execute` task on the VM's worker; its bytes travel over ExecChannels.
 * Closing the socket before the exit cancels the command.
 */
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { AetheriumError, errorMessage, isFinal, newId } from '../../domain/index.ts';
import { type ChannelMessage, execInput, execOutput } from '../../ports/exec-channels.ts';
import type { ExecChannels } from '../../ports/exec-channels.ts';
import type { ApiDeps } from '../api-deps.ts';
import { execBody, idParam } from '../schemas.ts';

const startMessage = execBody.extend({ type: z.literal('start') });
const clientMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('stdin'), data: z.string() }).strict(),
  z.object({ type: z.literal('stdin_end') }).strict(),
  z.object({ type: z.literal('cancel') }).strict(),
]);

const CLOSE = { badMessage: 4400, notFound: 4404, conflict: 4409, failed: 1011 } as const;

export function execStreamRoutes(deps: ApiDeps, channels: ExecChannels): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/vms/:id/exec/stream',
      {
        websocket: true,
        schema: {
          tags: ['vms'],
          summary: 'Run one command interactively over WebSocket (stdin, stdout, stderr, exit code)',
          params: idParam,
        },
      },
      (socket, request) => {
        const ws = socket as WebSocket;
        const vmId = (request.params as { id: string }).id;
        const send = (message: object) => ws.readyState === ws.OPEN && ws.send(JSON.stringify(message));
        const fail = (code: number, error: { code: string; message: string }) => {
          send({ type: 'error', ...error });
          ws.close(code, error.message.slice(0, 120));
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
            const start = startMessage.safeParse(parsed);
            if (!start.success)
              return fail(CLOSE.badMessage, {
                code: 'validation_failed',
                message: `the first message must be {"type":"start","command":…}: ${start.error.issues.map((i) => `${i.path.join('.') || 'message'}: ${i.message}`).join('; ')}`,
              });
            const { type: _type, timeout, ...exec } = start.data;
            taskId = newId();
            try {
              // Listen before the task exists, so not a byte of output is missed.
              unsubscribe = await channels.subscribe(execOutput(taskId), forward);
              await deps.vms.exec(
                vmId,
                { ...exec, ...(timeout ? { timeout_ms: Math.round(timeout * 1000) } : {}), stream: true },
                taskId,
              );
            } catch (err) {
              await unsubscribe?.();
              const e = err instanceof AetheriumError ? err : new AetheriumError('internal', errorMessage(err));
              return fail(
                e.code === 'not_found' ? CLOSE.notFound : e.code === 'conflict' ? CLOSE.conflict : CLOSE.failed,
                { code: e.code, message: e.message },
              );
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
              fail(CLOSE.failed, {
                code: task.status === 'cancelled' ? 'cancelled' : 'driver_failed',
                message: task.error ?? task.status,
              });
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
