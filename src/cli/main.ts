/**
 * `aetherium`: the processes (dev, server, worker) and a client for the API (vm, workers, cluster,
 * tasks). Client commands print tables, or JSON with --json, and exit non-zero on any error.
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../runtime/version.ts';
import { ApiClient, CliError } from './api-client.ts';
import { registerEventCommands } from './commands/events.ts';
import { registerRunCommands } from './commands/run.ts';
import { registerTaskCommands } from './commands/tasks.ts';
import { registerTlsCommands } from './commands/tls.ts';
import { registerAuditCommand, registerTokenCommands } from './commands/tokens.ts';
import { registerVmCommands } from './commands/vm.ts';
import { registerWorkerCommands } from './commands/workers.ts';
import type { GlobalOptions } from './global-options.ts';
import { setToken } from './credentials.ts';
import { setCaFile } from './http.ts';

const program = new Command('aetherium')
  .version(VERSION)
  .description('Isolated micro-VMs across a fleet of hosts')
  .option('--api <url>', 'control plane address', process.env.AETHERIUM_API ?? 'http://localhost:8080')
  .option('--json', 'print JSON instead of tables', false)
  .option('--ca-file <file>', 'PEM CA to trust for an https:// control plane (default: AETHERIUM_CA_FILE)')
  .option('--token <key>', 'API key or JWT (default: AETHERIUM_TOKEN, else .aetherium/admin.key from `aetherium dev`)')
  .showHelpAfterError()
  .exitOverride();

const global = () => program.opts<GlobalOptions>();
program.hook('preAction', () => {
  setToken(global().token);
  setCaFile(global().caFile);
});
const client = () => new ApiClient(global().api);

registerRunCommands(program);
registerVmCommands(program, client, global);
registerWorkerCommands(program, client, global);
registerTaskCommands(program, client, global);
registerEventCommands(program, global);
registerTokenCommands(program, client, global);
registerAuditCommand(program, client, global);
registerTlsCommands(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  if (err instanceof CommanderError) {
    process.exitCode = err.exitCode;
  } else if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exitCode = err.exitCode;
  } else {
    process.stderr.write(`error: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  }
}
