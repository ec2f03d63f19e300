/**
 * The error the API answers with for a command whose task did not complete. The task's `error`
 * keeps the catalogue code of what failed it (`taskErrorText`), so the answer has the status that
 * code has: a VM the worker found stopping is 409 `conflict`, a `cwd` that does not exist in the VM
 * 400 `validation_failed`, a driver failure 502 `driver_failed`. A failure without a code is a
 * driver failure, as it always was.
 */
import { AetheriumError, ERROR_CATALOGUE, type ErrorCode, parseTaskError, type Task } from '../domain/index.ts';

export function commandFailure(task: Task): AetheriumError {
  const details = { task_id: task.id };
  if (task.status === 'cancelled')
    return new AetheriumError('cancelled', `the command was cancelled: ${task.error ?? 'by request'}`, details);
  const { code, message } = parseTaskError(task.error ?? task.status);
  if (code) return new AetheriumError(code, message, details);
  return new AetheriumError('driver_failed', `the command could not run: ${message}`, details);
}

/**
 * The WebSocket close code for an error: 4000 + its HTTP status for a client's error (4400 bad
 * input, 4404 no such VM, 4409 conflict or cancelled, …), 1011 only for a fault on our side.
 */
export function closeCodeOf(code: ErrorCode): number {
  const { status } = ERROR_CATALOGUE[code];
  return status < 500 ? 4000 + status : 1011;
}
