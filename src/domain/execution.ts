import { Buffer, isUtf8 } from 'node:buffer';

/**
 * Every command run in a VM is recorded, whatever its exit code.
 *
 * Output is binary-safe. `stdout` and `stderr` are text, and they are exactly the bytes the command
 * wrote when those are valid UTF-8 without a NUL byte (what nearly every command prints); then there
 * is no `*_base64` field. Otherwise `stdout` (or `stderr`) is a lossy preview, each invalid sequence
 * and each NUL shown as U+FFFD, and `stdout_base64` (or `stderr_base64`) holds the exact bytes. A
 * client that needs the bytes takes `*_base64` when it is there and the text otherwise. The same
 * fields travel in the execution record, the `vm:execute` task's result and the API's answer.
 *
 * Why: Postgres (and PGlite) refuse NUL in `text` and `jsonb` and keep only valid UTF-8, so raw
 * output in a text field failed the whole task after the command had run. A capped output keeps its
 * first bytes (MAX_OUTPUT_BYTES), and its text ends with a note saying how much was dropped.
 */
export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
  /** The exact bytes of stdout, base64; only when they are not valid UTF-8 or contain NUL. */
  stdout_base64?: string;
  /** The exact bytes of stderr, base64; only when they are not valid UTF-8 or contain NUL. */
  stderr_base64?: string;
  /** True when the command was killed because its timeout ran out. */
  timed_out?: boolean;
}

export interface Execution extends ExecResult {
  id: string;
  vm_id: string;
  task_id: string | null;
  command: string;
  args: string[];
  env: Record<string, string>;
  started_at: Date;
  completed_at: Date;
  duration_ms: number;
}

/** One output stream as the fields above carry it: text, and the exact bytes when text cannot hold them. */
export interface CapturedOutput {
  text: string;
  base64?: string;
}

/** Bytes that text fields can carry as they are: valid UTF-8 without NUL. */
export function isCleanText(bytes: Uint8Array): boolean {
  return !bytes.includes(0) && isUtf8(bytes);
}

/** A lossy, storable rendering of any bytes: invalid UTF-8 and NUL become U+FFFD. */
export function previewOf(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8').replaceAll('\0', '\uFFFD');
}

export function captureOutput(bytes: Uint8Array): CapturedOutput {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (isCleanText(buffer)) return { text: buffer.toString('utf8') };
  return { text: previewOf(buffer), base64: buffer.toString('base64') };
}

const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Text that a `text` or `jsonb` column keeps exactly: no NUL, no unpaired UTF-16 surrogate. */
export function isStorableText(text: string): boolean {
  return !text.includes('\0') && !UNPAIRED_SURROGATE.test(text);
}

/**
 * The output fields of a result, whatever a driver put in them: a text that could not be stored (a
 * driver that handed over NUL or broken UTF-16 instead of bytes) is turned into a preview plus the
 * bytes of its UTF-8 encoding. Drivers that collect bytes (OutputBuffer) never need it.
 */
export function storableOutput(text: string, base64: string | undefined): CapturedOutput {
  if (base64 !== undefined) return { text: isStorableText(text) ? text : previewOf(Buffer.from(text, 'utf8')), base64 };
  if (isStorableText(text)) return { text };
  return captureOutput(Buffer.from(text, 'utf8'));
}

/** `stdout`, `stderr` and, when needed, `stdout_base64` and `stderr_base64`, from the two streams. */
export function outputFields(
  stdout: CapturedOutput,
  stderr: CapturedOutput,
): Pick<ExecResult, 'stdout' | 'stderr' | 'stdout_base64' | 'stderr_base64'> {
  return {
    stdout: stdout.text,
    stderr: stderr.text,
    ...(stdout.base64 === undefined ? {} : { stdout_base64: stdout.base64 }),
    ...(stderr.base64 === undefined ? {} : { stderr_base64: stderr.base64 }),
  };
}
