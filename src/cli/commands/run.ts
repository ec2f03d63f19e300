/**
 * `aetherium dev | server | worker`: the long-running processes. Everything they run (the config
 * loader, the logger, the runtime) is imported inside their actions, so that the other commands
 * (`--version`, the API client) do not load it.
 */
import { type Command, Option } from 'commander';
import type { Config } from '../../config/schema.ts';
import type { Logger } from '../../runtime/logger.ts';
import { usageError } from '../errors.ts';
import type { RunFlags } from '../startup.ts';

type Role = 'dev' | 'server' | 'worker';

/**
 * The configuration, checked: then, for the roles that listen or use engines, the ports and the
 * engines are tried, so that a start that cannot succeed ends here with one line (startup.ts).
 */
async function prepare(flags: RunFlags, role: Role): Promise<Config> {
  // A long-running process: its stack traces name the TypeScript sources, through the build's
  // maps (read for what loads from here on; the client commands skip that cost).
  process.setSourceMapsEnabled(true);
  const startup = await import('../startup.ts');
  const config = await startup.loadRunConfig(flags);
  if (role === 'worker') return config;
  // The rules the start itself enforces first, so that a refused configuration touches nothing.
  await starting(config, role, async () => {
    const { requireSafeBind } = await import('../../runtime/safe-bind.ts');
    requireSafeBind(config, role);
    if (role === 'server') (await import('../../runtime/cluster.ts')).requireSharedEngines(config, role);
  });
  await startup.checkListeners(startup.listenersOf(role === 'dev' ? devConfig(config) : config, role));
  await startup.probeEngines(config);
  return config;
}

/** Runs a start; a failure it can name (a port, an engine, a config mistake) becomes one line. */
async function starting<T>(config: Config, role: Role, start: () => Promise<T>): Promise<T> {
  try {
    return await start();
  } catch (err) {
    const { explainStartFailure } = await import('../startup.ts');
    throw explainStartFailure(err, config, role) ?? err;
  }
}

/**
 * `aetherium dev` is one worker per data dir, so its VMs stay where they always were, beside its
 * database (`<data dir>/vms`), rather than under `.aetherium/workers/<id>` like a cluster worker's.
 */
function devConfig(config: Config): Config {
  if (config.worker.drivers.state_dir !== null) return config;
  const drivers = { ...config.worker.drivers, state_dir: '.aetherium/vms' };
  return { ...config, worker: { ...config.worker, drivers } };
}

/**
 * A worker opens no port: it connects out to the engines (and the servers). Accepting the API
 * flags and ignoring them would let `aetherium worker -p 9000` look as if it did something.
 */
function refuseListenFlags(flags: RunFlags): void {
  const given = flags.port !== undefined ? '--port' : flags.host !== undefined ? '--host' : null;
  if (!given) return;
  const hint =
    given === '--host'
      ? 'the address it advertises to the control plane is worker.address in the config'
      : 'the API port is set on `aetherium server` or `aetherium dev`';
  throw usageError(
    `aetherium worker does not take ${given}: it opens no port (it connects out to the control plane); ${hint}`,
  );
}

/** `tee`: the buffer that also gets every line (for `aetherium workers logs`). */
async function loggerFor(config: Config, tee?: NodeJS.WritableStream): Promise<Logger> {
  const { createLogger } = await import('../../runtime/logger.ts');
  return createLogger({ level: config.log.level, pretty: config.log.pretty || process.stdout.isTTY === true }, tee);
}

/** SIGINT/SIGTERM stop gracefully; a second signal exits at once. */
function onShutdown(log: Logger, stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(130);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

function addConfigFlag(command: Command): Command {
  return command.option('-c, --config <file>', 'YAML config file (default: ./aetherium.yaml when present)');
}

function addRunFlags(command: Command): Command {
  return addConfigFlag(command)
    .option('-p, --port <port>', 'API port (api_gateway.port)')
    .option('--host <host>', 'API listen address (api_gateway.host)');
}

export function registerRunCommands(program: Command): void {
  addRunFlags(program.command('dev'))
    .description('control plane + one local worker in one process, on embedded engines')
    .option('--data-dir <dir>', 'where the embedded database and VM files live (default .aetherium)')
    .action(async (flags: RunFlags) => {
      const config = devConfig(await prepare(flags, 'dev'));
      const { LogBuffer } = await import('../../runtime/log-buffer.ts');
      const buffer = new LogBuffer();
      const log = await loggerFor(config, buffer);
      const started = Date.now();
      // Loaded on demand: client commands should not pay for the server's modules.
      const { startDev } = await import('../../runtime/dev.ts');
      const system = await starting(config, 'dev', () => startDev(config, log, { logs: buffer }));
      onShutdown(log, () => system.stop());
      const port = config.api_gateway.port;
      const base = `http://localhost:${port}`;
      log.info(
        {
          ui: config.ui.enabled ? `${base}/` : null,
          api: `${base}/api/v1`,
          docs: `${base}/api/docs`,
          worker: system.agent.id,
          drivers: system.agent.registration().capabilities,
          startup_ms: Date.now() - started,
          admin_key_file: system.adminKeyFile,
        },
        `Aetherium dev is up at ${base}`,
      );
      if (system.adminKeyFile) {
        // Where the key is, never the key: the CLI on this machine reads it; curl needs it spelled out.
        log.info(
          `the admin API key is in ${system.adminKeyFile} (mode 0600); \`npx aetherium\` uses it on this machine; ` +
            `the web UI at ${base}/ signs in with it (cat ${system.adminKeyFile}); ` +
            `curl: -H "Authorization: Bearer $(cat ${system.adminKeyFile})"`,
        );
      }
    });

  addRunFlags(program.command('server'))
    .description('control plane only (run any number behind a load balancer); needs shared engines')
    .action(async (flags: RunFlags) => {
      const config = await prepare(flags, 'server');
      const log = await loggerFor(config);
      const { startServer } = await import('../../runtime/cluster.ts');
      const server = await starting(config, 'server', () => startServer(config, log));
      onShutdown(log, () => server.stop());
      log.info(
        {
          address: server.address,
          store: config.store.kind,
          queue: config.queue.kind,
          discovery: config.discovery.provider,
        },
        'Aetherium server is up',
      );
    });

  addConfigFlag(program.command('worker'))
    .description(
      'worker agent for this host; connects to the control plane agent ports over mutual TLS, needs no engine',
    )
    .option('--server <host:port...>', 'a control plane agent port (repeat for each replica; worker.servers)')
    .option(
      '--join <token>',
      'join with this token (`aetherium tokens create --join`); the certificate is kept in the state dir',
    )
    .option('--id <id>', 'this worker id (worker.id; default: the host name)')
    // Known but hidden, so that they are refused with the reason instead of an unknown-option error.
    .addOption(new Option('-p, --port <port>').hideHelp())
    .addOption(new Option('--host <host>').hideHelp())
    .action(async (flags: RunFlags) => {
      refuseListenFlags(flags);
      const config = await prepare(flags, 'worker');
      const { LogBuffer } = await import('../../runtime/log-buffer.ts');
      // Its recent lines, for `aetherium workers logs`: kept here, sent only when asked for.
      const buffer = new LogBuffer();
      const log = await loggerFor(config, buffer);
      const { startWorker } = await import('../../runtime/cluster.ts');
      const worker = await starting(config, 'worker', () => startWorker(config, log, buffer));
      onShutdown(log, () => worker.stop());
      log.info(
        { worker: worker.agent.id, zone: config.worker.zone, drivers: worker.agent.registration().capabilities },
        'Aetherium worker is up',
      );
    });
}
