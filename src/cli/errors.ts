/** An error the CLI prints as `error: <message>` and exits with `exitCode`. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly code = 'error',
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
