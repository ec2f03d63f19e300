/**
 * How an execution's binary-safe output (see `ExecResult`) fits the `executions` table, whose
 * `stdout` and `stderr` are `text` columns: clean text is stored as it is; output that comes with
 * its exact bytes (`stdout_base64`) is stored as one self-describing text,
 *
 *   MARKER + base64 of the bytes + "\n" + the lossy preview
 *
 * and read back into the two fields. A clean text that happens to begin with MARKER is stored the
 * same way, so reading is never ambiguous. Everything the control plane writes to or reads from
 * that table goes through these two functions; the task result (jsonb) carries the fields as they are.
 */
import { Buffer } from 'node:buffer';
import { type CapturedOutput, type Execution, isCleanText } from '../domain/index.ts';

/** U+FFFF is a noncharacter: no text a command prints is expected to begin with it. */
const MARKER = '\uFFFFaetherium:base64:';

function pack(output: CapturedOutput): string {
  if (output.base64 !== undefined) return `${MARKER}${output.base64}\n${output.text}`;
  if (output.text.startsWith(MARKER))
    return `${MARKER}${Buffer.from(output.text, 'utf8').toString('base64')}\n${output.text}`;
  return output.text;
}

function unpack(stored: string): CapturedOutput {
  if (!stored.startsWith(MARKER)) return { text: stored };
  const newline = stored.indexOf('\n', MARKER.length);
  if (newline < 0) return { text: stored };
  const base64 = stored.slice(MARKER.length, newline);
  const text = stored.slice(newline + 1);
  return isCleanText(Buffer.from(base64, 'base64')) ? { text } : { text, base64 };
}

/** The execution as the store keeps it: the `*_base64` fields folded into the text columns. */
export function toExecutionRow(execution: Execution): Execution {
  const { stdout_base64, stderr_base64, ...rest } = execution;
  return {
    ...rest,
    stdout: pack({ text: execution.stdout, base64: stdout_base64 }),
    stderr: pack({ text: execution.stderr, base64: stderr_base64 }),
  };
}

/** The execution as the API shows it, from the row `toExecutionRow` wrote. */
export function fromExecutionRow(row: Execution): Execution {
  const stdout = unpack(row.stdout);
  const stderr = unpack(row.stderr);
  return {
    ...row,
    stdout: stdout.text,
    stderr: stderr.text,
    ...(stdout.base64 === undefined ? {} : { stdout_base64: stdout.base64 }),
    ...(stderr.base64 === undefined ? {} : { stderr_base64: stderr.base64 }),
  };
}
