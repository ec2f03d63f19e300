/** An error the CLI prints as one line, `error: <message>`, and exits with `exitCode` (exit-codes.ts). */
import { EXIT, type ExitCode } from './exit-codes.ts';

export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.ERROR,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.USAGE);
