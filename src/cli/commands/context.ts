/**
 * `aetherium context …`: named control planes, like kubectl's contexts. Each context is an API URL
 * and how to authenticate to it (a token file, or a token stored in the configuration file) and
 * which CA to trust; one is current, and `--context NAME` picks another for one command. The file
 * is the SDK's client configuration (src/sdk/config.ts: `$AETHERIUM_CLIENT_CONFIG`, else
 * `$XDG_CONFIG_HOME/aetherium/config.yaml`, else `~/.config/aetherium/config.yaml`), written 0600.
 * A token is never printed: a context shows where its token is, not what it is.
 */
import type { Command } from 'commander';
import type { ContextInfo } from '../../sdk/index.ts';
import { CliError, usageError } from '../errors.ts';
import { EXIT } from '../exit-codes.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { type Column, out, printJson, printList } from '../output.ts';

const sdkConfig = () => import('../../sdk/config.ts');

function tokenText(c: ContextInfo): string {
  return c.tokenFile ?? (c.hasInlineToken ? '(in the config file)' : '-');
}

const CONTEXT_COLUMNS: Column<ContextInfo>[] = [
  { header: 'CURRENT', value: (c) => (c.current ? '*' : '') },
  { header: 'NAME', value: (c) => c.name },
  { header: 'API', value: (c) => c.api },
  { header: 'TOKEN', value: tokenText },
  { header: 'CA FILE', value: (c) => c.caFile, wide: true },
];

/** A context as JSON: its fields with the configuration's names (never a token). */
function contextJson(c: ContextInfo) {
  return {
    name: c.name,
    current: c.current,
    api: c.api,
    token_file: c.tokenFile,
    inline_token: c.hasInlineToken,
    ca_file: c.caFile,
  };
}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw usageError('--token-stdin reads the token from standard input: pipe it in');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks).toString('utf8').trim();
}

async function requireContext(name: string): Promise<void> {
  const { listContexts, configPath } = await sdkConfig();
  const names = listContexts().map((c) => c.name);
  if (!names.includes(name))
    throw new CliError(
      `no context named ${name} in ${configPath()}${names.length ? ` (there are: ${names.join(', ')})` : ' (it has none: aetherium context add NAME --api URL)'}`,
      EXIT.NOT_FOUND,
    );
}

export function registerContextCommands(program: Command, global: () => GlobalOptions): void {
  const context = program
    .command('context')
    .description('named control planes (API URL, token file, CA): add, use, list, current, remove');

  context
    .command('add')
    .description('add a context (the first one added becomes current)')
    .usage('<name> --api URL [--token-file FILE | --token-stdin] [--ca-file FILE] [--use] [--overwrite]')
    .argument('<name>', 'a name: letters, digits, ".", "_" or "-"')
    .option('--token-file <file>', 'a file (mode 0600) holding the API key or JWT; it is read at each call')
    .option('--token-stdin', 'read the token from standard input and keep it in the config file (mode 0600)')
    .option('--use', 'make it the current context')
    .option('--overwrite', 'replace a context of the same name')
    .addHelpText(
      'after',
      "\n--api URL (the control plane's URL, e.g. https://cp.example.com:8080) and --ca-file FILE (the PEM CA\n" +
        'that signed its certificate) are the global flags: here they are stored in the context instead of used.',
    )
    .action(async (name: string, o) => {
      // --api and --ca-file are the global flags (commander gives them to the program wherever they are).
      const g = global();
      if (!g.api) throw usageError('context add needs --api URL: the control plane this context points at');
      if (o.tokenFile && o.tokenStdin) throw usageError('give --token-file or --token-stdin, not both');
      const token = o.tokenStdin ? await readStdin() : undefined;
      if (o.tokenStdin && !token) throw usageError('--token-stdin: standard input was empty');
      const { addContext, configPath } = await sdkConfig();
      const info = addContext(name, {
        api: g.api,
        ...(o.tokenFile ? { tokenFile: o.tokenFile } : {}),
        ...(token ? { token } : {}),
        ...(g.caFile ? { caFile: g.caFile } : {}),
        ...(o.use ? { use: true } : {}),
        ...(o.overwrite ? { overwrite: true } : {}),
      });
      if (outputFormat(g) === 'json') return printJson({ config_file: configPath(), context: contextJson(info) });
      out(
        `context ${info.name} added (${info.api})${info.current ? ', and it is the current context' : ''}; in ${configPath()}\n`,
      );
    });

  context
    .command('use')
    .description('make a context the current one')
    .argument('<name>')
    .action(async (name: string) => {
      const g = global();
      await requireContext(name);
      const { useContext } = await sdkConfig();
      const info = useContext(name);
      if (outputFormat(g) === 'json') return printJson(contextJson(info));
      out(`switched to context ${info.name} (${info.api})\n`);
    });

  context
    .command('list')
    .alias('ls')
    .description('list the contexts; the current one is marked *')
    .action(async () => {
      const g = global();
      const { listContexts, configPath } = await sdkConfig();
      const contexts = listContexts();
      const data = {
        config_file: configPath(),
        current_context: contexts.find((c) => c.current)?.name ?? null,
        contexts: contexts.map(contextJson),
      };
      printList(g, data, () => contexts, CONTEXT_COLUMNS);
    });

  context
    .command('current')
    .description('print the current context')
    .action(async () => {
      const g = global();
      const { currentContext, configPath } = await sdkConfig();
      const info = currentContext();
      if (!info)
        throw new CliError(
          `no current context in ${configPath()}: aetherium context use NAME (or add one)`,
          EXIT.NOT_FOUND,
        );
      if (outputFormat(g) === 'json') return printJson(contextJson(info));
      out(outputFormat(g) === 'wide' ? `${info.name}\t${info.api}\t${tokenText(info)}\n` : `${info.name}\n`);
    });

  context
    .command('remove')
    .alias('rm')
    .description('remove a context (and unset it when it was the current one)')
    .argument('<name>')
    .action(async (name: string) => {
      const g = global();
      await requireContext(name);
      const { removeContext } = await sdkConfig();
      removeContext(name);
      if (outputFormat(g) === 'json') return printJson({ removed: name });
      out(`context ${name} removed\n`);
    });
}
