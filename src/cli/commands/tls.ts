/**
 * `aetherium tls ca create` and `aetherium tls cert create`: the cluster's CA and the certificates
 * of its agent channel, made on the operator's machine in the manner of `nomad tls`. Files are
 * named as Nomad names them (`<domain>-agent-ca.pem`, `server-<domain>.pem`), keys are written mode
 * 0600, and nothing is replaced without --force. The PKI modules are loaded only when one of these
 * commands runs: they cost every other command a noticeable part of a second at start.
 */
import { join } from 'node:path';
import { type Command, InvalidArgumentError } from 'commander';
import { CliError, usageError } from '../errors.ts';
import { EXIT } from '../exit-codes.ts';
import { type GlobalOptions, outputFormat } from '../global-options.ts';
import { printJson } from '../output.ts';

export const CA_CERT_FILE = 'aetherium-agent-ca.pem';
export const CA_KEY_FILE = 'aetherium-agent-ca-key.pem';
const SERVER_CERT_FILE = 'server-aetherium.pem';
const SERVER_KEY_FILE = 'server-aetherium-key.pem';

interface CaCreateFlags {
  dir: string;
  commonName?: string;
  days?: number;
  force?: boolean;
}

interface CertCreateFlags {
  server?: boolean;
  worker?: string;
  ca?: string;
  key?: string;
  dir: string;
  days?: number;
  additionalDnsname?: string[];
  additionalIpaddress?: string[];
  force?: boolean;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) throw new InvalidArgumentError('expected a whole number of days above 0');
  return n;
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The PKI's own errors as CliErrors: bad input and unusable CA files are exit 2, like other config faults; a file that exists is 6. */
async function cliErrors(run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (err) {
    const [{ PkiFileError }, { AetheriumError }] = await Promise.all([
      import('../../adapters/pki/files.ts'),
      import('../../domain/index.ts'),
    ]);
    if (err instanceof PkiFileError) {
      throw new CliError(err.message, err.reason === 'exists' ? EXIT.CONFLICT : EXIT.USAGE);
    }
    if (err instanceof AetheriumError) throw new CliError(err.message, EXIT.USAGE);
    throw err;
  }
}

function report(command: Command, lines: [string, string][], json: Record<string, string>): void {
  if (outputFormat(command.optsWithGlobals<GlobalOptions>()) === 'json') return printJson(json);
  for (const [label, value] of lines) process.stdout.write(`==> ${label}: ${value}\n`);
}

export function registerTlsCommands(program: Command): void {
  const tls = program.command('tls').description('the cluster CA and agent certificates: create them');

  tls
    .command('ca')
    .description('the certificate authority of the agent channel')
    .command('create')
    .description(`create a CA: ${CA_CERT_FILE} and ${CA_KEY_FILE} (mode 0600)`)
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--common-name <name>', 'the CA certificate subject (default: "Aetherium Agent CA")')
    .option('--days <n>', 'validity in days (default: 1825, five years)', positiveInteger)
    .option('--force', 'replace files that exist')
    .action((flags: CaCreateFlags, command: Command) =>
      cliErrors(async () => {
        const { createCa, caFingerprint } = await import('../../adapters/pki/ca.ts');
        const { writePemFiles } = await import('../../adapters/pki/files.ts');
        const { certPem, keyPem } = await createCa({ commonName: flags.commonName, days: flags.days });
        const certFile = join(flags.dir, CA_CERT_FILE);
        const keyFile = join(flags.dir, CA_KEY_FILE);
        await writePemFiles(
          [
            { path: certFile, pem: certPem },
            { path: keyFile, pem: keyPem, secret: true },
          ],
          { force: flags.force },
        );
        const fingerprint = caFingerprint(certPem);
        report(
          command,
          [
            ['CA certificate saved to', certFile],
            ['CA certificate key saved to', keyFile],
            ['CA fingerprint', fingerprint],
          ],
          { cert_file: certFile, key_file: keyFile, fingerprint },
        );
      }),
    );

  tls
    .command('cert')
    .description('certificates signed by the CA')
    .command('create')
    .description('create a server certificate (--server) or a worker certificate (--worker <id>)')
    .option('--server', `a control plane certificate: ${SERVER_CERT_FILE} and ${SERVER_KEY_FILE}`)
    .option('--worker <id>', 'a certificate for this worker: worker-<id>.pem and worker-<id>-key.pem')
    .option('--ca <file>', `the CA certificate (default: <dir>/${CA_CERT_FILE})`)
    .option('--key <file>', `the CA key (default: <dir>/${CA_KEY_FILE})`)
    .option('--dir <dir>', 'where to write the files', '.')
    .option('--days <n>', 'validity in days (default: 365)', positiveInteger)
    .option('--additional-dnsname <name>', 'another DNS name for a server certificate (repeatable)', collect)
    .option('--additional-ipaddress <ip>', 'another IP address for a server certificate (repeatable)', collect)
    .option('--force', 'replace files that exist')
    .action((flags: CertCreateFlags, command: Command) =>
      cliErrors(async () => {
        if (Boolean(flags.server) === (flags.worker !== undefined)) {
          throw usageError('pass exactly one of --server or --worker <id>');
        }
        if (flags.worker !== undefined && (flags.additionalDnsname || flags.additionalIpaddress)) {
          // A worker certificate names the worker and nothing else: it is only ever a client.
          throw usageError('--additional-dnsname and --additional-ipaddress are for --server only');
        }
        const { loadCa } = await import('../../adapters/pki/ca.ts');
        const { issueServerCert, issueWorkerCert } = await import('../../adapters/pki/certificates.ts');
        const { writePemFiles } = await import('../../adapters/pki/files.ts');
        const ca = await loadCa(flags.ca ?? join(flags.dir, CA_CERT_FILE), flags.key ?? join(flags.dir, CA_KEY_FILE));
        const issued =
          flags.worker !== undefined
            ? await issueWorkerCert(ca, flags.worker, { days: flags.days })
            : await issueServerCert(ca, {
                dnsNames: flags.additionalDnsname,
                ipAddresses: flags.additionalIpaddress,
                days: flags.days,
              });
        // The worker id is checked against WORKER_ID_PATTERN by now, so it is safe in a file name.
        const base = flags.worker !== undefined ? `worker-${flags.worker}` : 'server-aetherium';
        const certFile = join(flags.dir, `${base}.pem`);
        const keyFile = join(flags.dir, `${base}-key.pem`);
        await writePemFiles(
          [
            { path: certFile, pem: issued.certPem },
            { path: keyFile, pem: issued.keyPem, secret: true },
          ],
          { force: flags.force },
        );
        const what = flags.worker !== undefined ? `worker ${flags.worker}` : 'server';
        const notAfter = issued.notAfter.toISOString();
        report(
          command,
          [
            [`${what} certificate saved to`, certFile],
            [`${what} certificate key saved to`, keyFile],
            ['expires', notAfter],
          ],
          { cert_file: certFile, key_file: keyFile, serial: issued.serial, not_after: notAfter },
        );
      }),
    );
}
