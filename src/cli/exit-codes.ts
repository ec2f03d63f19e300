/**
 * The CLI's exit codes: this table is the one place they are defined (the README's CLI section
 * shows it, and a test keeps the two in step). `exitCodeOf` maps any error the CLI meets to one:
 * the SDK's typed errors by their code, the CLI's own by the code they carry.
 *
 * `vm exec` is the exception that proves it: it exits with the command's own exit code (124 when
 * its --timeout killed it, as timeout(1) does), and with one of these only when the CLI itself
 * failed, which its message then says.
 */

export const EXIT = {
  OK: 0,
  ERROR: 1,
  USAGE: 2,
  NOT_FOUND: 3,
  UNAUTHORIZED: 4,
  FORBIDDEN: 5,
  CONFLICT: 6,
  UNAVAILABLE: 7,
  TIMEOUT: 8,
  RATE_LIMITED: 9,
  COMMAND_TIMED_OUT: 124,
  INTERRUPTED: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** What each code means, for the README and `--help`. */
export const EXIT_TABLE: readonly { code: ExitCode; meaning: string }[] = [
  { code: EXIT.OK, meaning: 'success' },
  {
    code: EXIT.ERROR,
    meaning: 'any other error: a task that failed, a fault of the server (500), an unexpected answer',
  },
  {
    code: EXIT.USAGE,
    meaning:
      'usage or configuration: a bad flag or argument, a request the API refused as invalid (400), a bad config file or context',
  },
  { code: EXIT.NOT_FOUND, meaning: 'not found (404): no such VM, task, worker, key or context' },
  {
    code: EXIT.UNAUTHORIZED,
    meaning: 'unauthorized (401): no credentials, or a token that is wrong, expired or revoked',
  },
  { code: EXIT.FORBIDDEN, meaning: "forbidden (403): the token's role does not allow this" },
  {
    code: EXIT.CONFLICT,
    meaning: 'conflict (409): the state does not allow it (cancelling a completed task, a name in use)',
  },
  {
    code: EXIT.UNAVAILABLE,
    meaning:
      'unavailable: the control plane cannot be reached or its certificate is not trusted, an engine or worker is unavailable (503); at start, a port in use or an engine unreachable',
  },
  { code: EXIT.TIMEOUT, meaning: 'timeout: a request, or a wait (`vm create`, `--wait`), ran out of time' },
  { code: EXIT.RATE_LIMITED, meaning: 'rate limited (429): try again later' },
  { code: EXIT.COMMAND_TIMED_OUT, meaning: '`vm exec`: the command ran out of its `--timeout` and was killed' },
  { code: EXIT.INTERRUPTED, meaning: 'interrupted (Ctrl-C); `vm exec` cancels the command in the VM first' },
];

/** The exit code for an error code of the API's catalogue or of the SDK's own. */
const BY_ERROR_CODE: Record<string, ExitCode> = {
  validation_failed: EXIT.USAGE,
  bad_request: EXIT.USAGE,
  config: EXIT.USAGE,
  unauthorized: EXIT.UNAUTHORIZED,
  forbidden: EXIT.FORBIDDEN,
  not_found: EXIT.NOT_FOUND,
  conflict: EXIT.CONFLICT,
  cancelled: EXIT.CONFLICT,
  rate_limited: EXIT.RATE_LIMITED,
  unavailable: EXIT.UNAVAILABLE,
  driver_unavailable: EXIT.UNAVAILABLE,
  worker_refused: EXIT.UNAVAILABLE,
  worker_lost: EXIT.UNAVAILABLE,
  unreachable: EXIT.UNAVAILABLE,
  tls: EXIT.UNAVAILABLE,
  timeout: EXIT.TIMEOUT,
  aborted: EXIT.INTERRUPTED,
  internal: EXIT.ERROR,
  driver_failed: EXIT.ERROR,
  bad_response: EXIT.ERROR,
};

export function exitCodeForErrorCode(code: string): ExitCode {
  return BY_ERROR_CODE[code] ?? EXIT.ERROR;
}

/**
 * The exit code of an error: a CliError's own, an SDK error's by its code (the SDK's errors carry
 * `code`, `status` and `retryable`), else 1.
 */
export function exitCodeOf(err: unknown): ExitCode {
  if (typeof err !== 'object' || err === null) return EXIT.ERROR;
  const e = err as { exitCode?: unknown; code?: unknown; status?: unknown; retryable?: unknown };
  if (typeof e.exitCode === 'number' && isExitCode(e.exitCode)) return e.exitCode;
  if (typeof e.code === 'string' && typeof e.status === 'number' && typeof e.retryable === 'boolean')
    return exitCodeForErrorCode(e.code);
  return EXIT.ERROR;
}

function isExitCode(n: number): n is ExitCode {
  return (Object.values(EXIT) as number[]).includes(n);
}
