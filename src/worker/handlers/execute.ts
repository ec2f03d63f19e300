/**
 * vm:execute: runs one command in the VM and records it in `executions`. A non-zero exit code is a
 * result, not a failure. There is no fixed cap on run time: only the timeout the caller gives.
 */
import {
  conflict,
  type ExecResult,
  type ExecTaskResult,
  type ExecuteTask,
  type Execution,
  newId,
  outputFields,
  retryTransient,
  storableOutput,
  type Vm,
} from '../../domain/index.ts';
import { execInput, execOutput } from '../../ports/exec-channels.ts';
import { AsyncQueue } from '../async-queue.ts';
import { driverFor, requireVm, type WorkerContext } from '../context.ts';

export async function executeInVm(
  ctx: WorkerContext,
  task: ExecuteTask,
  claimed: Vm | null,
  signal: AbortSignal,
): Promise<ExecTaskResult> {
  const vm = requireVm(claimed, task.vm_id);
  if (vm.status !== 'running') throw conflict(`VM ${vm.name} is ${vm.status}, not running`);
  const payload = task.payload;
  const startedAt = new Date();
  const live = payload.stream ? await openLiveChannels(ctx, task.id) : null;
  let result: ExecResult;
  try {
    result = await driverFor(ctx, vm).exec(vm.id, {
      command: payload.command,
      args: payload.args ?? [],
      env: payload.env ?? {},
      cwd: payload.cwd,
      timeout_ms: payload.timeout_ms,
      signal,
      ...(live ? { stdinStream: live.stdin, onStdout: live.stdout, onStderr: live.stderr } : {}),
    });
  } finally {
    await live?.close();
  }
  if (live) {
    const exit = { type: 'exit' as const, exit_code: result.exit_code, timed_out: result.timed_out ?? false };
    // Best effort: the channel is fire-and-forget, and the client reads the exit from the task row too.
    await ctx.channels.publish(execOutput(task.id), exit).catch(() => undefined);
  }
  const completedAt = new Date();
  // Binary-safe whatever the driver handed over: text the database cannot keep (NUL, broken
  // UTF-16) would fail the record, and with it the task, of a command that ran.
  const output = outputFields(
    storableOutput(result.stdout, result.stdout_base64),
    storableOutput(result.stderr, result.stderr_base64),
  );
  const execution: Execution = {
    id: newId(),
    vm_id: vm.id,
    task_id: task.id,
    command: payload.command,
    args: payload.args ?? [],
    env: payload.env ?? {},
    exit_code: result.exit_code,
    ...output,
    timed_out: result.timed_out ?? false,
    started_at: startedAt,
    completed_at: completedAt,
    duration_ms: completedAt.getTime() - startedAt.getTime(),
  };
  // The command ran: its record must survive a database restart rather than turn into a failure.
  await retryTransient(() => ctx.link.recordExecution(ctx.workerId, execution));
  return {
    execution_id: execution.id,
    exit_code: result.exit_code,
    ...output,
    timed_out: result.timed_out ?? false,
    duration_ms: execution.duration_ms,
  };
}

/**
 * An interactive command: stdin comes from the client's channel as it is typed, stdout and stderr
 * go out as they are produced. `started` tells the replica holding the client that input can flow.
 */
async function openLiveChannels(ctx: WorkerContext, taskId: string) {
  const stdin = new AsyncQueue<string>();
  const unsubscribe = await ctx.channels.subscribe(execInput(taskId), (message) => {
    if (message.type === 'stdin') stdin.push(message.data);
    else if (message.type === 'stdin_end') stdin.end();
  });
  const out = execOutput(taskId);
  // Live output is best effort; the whole output is recorded in the execution either way.
  const send = (type: 'stdout' | 'stderr') => (data: string) =>
    void ctx.channels.publish(out, { type, data }).catch(() => undefined);
  await ctx.channels.publish(out, { type: 'started' });
  return {
    stdin,
    stdout: send('stdout'),
    stderr: send('stderr'),
    close: async () => {
      stdin.end();
      await unsubscribe();
    },
  };
}
