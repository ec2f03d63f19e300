/**
 * `aetherium`: the processes (dev, server, worker) and a client of the API (vm, workers, cluster,
 * tasks, events, tokens, audit) built on the SDK, with contexts, shell completion and the guest
 * image build. Client commands print tables (`-o wide`: more columns), or the API's data as JSON
 * (`--json`, `-o json`); progress goes to stderr. Every failure is one line, `error: …`, and an exit
 * code from the one table in exit-codes.ts. Only commander and these small modules load at start:
 * the SDK, the runtime and everything heavy are imported by the actions that need them.
 */
import { Command, CommanderError, Option } from 'commander';
import { VERSION } from '../runtime/version.ts';
import { cliWording, tokenHint } from './client.ts';
import { registerCompletionCommand } from './commands/completion.ts';
import { registerContextCommands } from './commands/context.ts';
import { registerEventCommands } from './commands/events.ts';
import { registerImageCommands } from './commands/image.ts';
import { registerRunCommands } from './commands/run.ts';
import { registerTaskCommands } from './commands/tasks.ts';
import { registerTlsCommands } from './commands/tls.ts';
import { registerAuditCommand, registerTokenCommands } from './commands/tokens.ts';
import { registerVmCommands } from './commands/vm.ts';
import { registerWorkerCommands } from './commands/workers.ts';
import { CliError } from './errors.ts';
import { EXIT, exitCodeOf } from './exit-codes.ts';
import type { GlobalOptions } from './global-options.ts';
import { stopAllProgress } from './progress.ts';

// Output piped into `head` (or anything that stops reading): stop quietly, as other tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(process.exitCode ?? EXIT.OK);
  });
}

const program = new Command('aetherium')
  .version(VERSION)
  .description('Isolated micro-VMs across a fleet of hosts')
  .option(
    '--api <url>',
    'control plane URL (default: AETHERIUM_API, else the current context, else http://localhost:8080)',
  )
  .option('--token <token>', 'API key or JWT (default: AETHERIUM_TOKEN, the context, or the key `aetherium dev` wrote)')
  .option(
    '--ca-file <file>',
    'PEM CA to trust for an https:// control plane (default: AETHERIUM_CA_FILE or the context)',
  )
  .option('--context <name>', 'use this context instead of the current one (default: AETHERIUM_CONTEXT)')
  .option('--json', 'print the API data as JSON (streams: one JSON object per line); the same as -o json', false)
  .addOption(
    new Option('-o, --output <format>', 'table, wide (more columns) or json').choices(['table', 'wide', 'json']),
  )
  .option('-q, --quiet', 'no progress lines on stderr', false)
  .showHelpAfterError('(add --help for usage)')
  .exitOverride();

const global = () => program.opts<GlobalOptions>();

registerRunCommands(program);
registerVmCommands(program, global);
registerWorkerCommands(program, global);
registerTaskCommands(program, global);
registerEventCommands(program, global);
registerTokenCommands(program, global);
registerAuditCommand(program, global);
registerContextCommands(program, global);
registerImageCommands(program, global);
registerTlsCommands(program);
registerCompletionCommand(program);

/** Commander's own exits: help and --version are 0; a command line it refuses is a usage error. */
function commanderExit(err: CommanderError): number {
  if (err.code === 'commander.version' || err.code === 'commander.helpDisplayed') return EXIT.OK;
  if (err.code === 'commander.help') return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  return EXIT.USAGE;
}

function report(err: unknown): void {
  stopAllProgress();
  if (err instanceof CommanderError) {
    process.exitCode = commanderExit(err);
    return;
  }
  const code = exitCodeOf(err);
  const known =
    err instanceof CliError || exitCodeOf(err) !== EXIT.ERROR || (err as { status?: unknown })?.status !== undefined;
  const text = cliWording(err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ');
  const message = code === EXIT.UNAUTHORIZED ? `${text}${tokenHint()}` : text;
  const debug = Boolean(process.env.AETHERIUM_DEBUG);
  process.stderr.write(`error: ${message}${!known && !debug ? ' (AETHERIUM_DEBUG=1 shows the stack)' : ''}\n`);
  if (debug && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  process.exitCode = code;
}

try {
  await program.parseAsync(process.argv);
} catch (err) {
  report(err);
}
