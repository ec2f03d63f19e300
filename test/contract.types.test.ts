/**
 * The contract binds code at compile time: a route handler whose answer drifts from its declared
 * response schema does not type-check, and neither does SDK code that reads a field the contract
 * no longer has. Each case is a small program checked by the TypeScript compiler with the
 * project's own settings, next to the same program without the drift, which must check clean.
 */
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** The diagnostics of one virtual file in test/, compiled with tsconfig.json's options. */
function diagnosticsOf(source: string): string[] {
  const config = ts.getParsedCommandLineOfConfigFile(
    join(root, 'tsconfig.json'),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, '\n'));
      },
    },
  );
  if (!config) throw new Error('tsconfig.json not readable');
  const file = join(root, 'test', '__contract_drift__.ts');
  const host = ts.createCompilerHost(config.options);
  const readFile = host.readFile.bind(host);
  const getSourceFile = host.getSourceFile.bind(host);
  host.readFile = (name) => (name === file ? source : readFile(name));
  host.fileExists = (name) => name === file || ts.sys.fileExists(name);
  host.getSourceFile = (name, version, onError, create) =>
    name === file ? ts.createSourceFile(name, source, version, true) : getSourceFile(name, version, onError, create);
  const program = ts.createProgram([file], config.options, host);
  return ts
    .getPreEmitDiagnostics(program, program.getSourceFile(file))
    .map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

const handler = (answer: string) => `
import Fastify from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { fastifySchema } from '../src/contract/routes.ts';

const app = Fastify().withTypeProvider<ZodTypeProvider>();
app.get('/workers/:id/vms', { schema: fastifySchema('listWorkerVms') }, async (request) => (${answer}));
`;

const sdkReader = (read: string) => `
import { Aetherium } from '../src/sdk/index.ts';

const client = new Aetherium({ apiUrl: 'http://127.0.0.1:1', token: 'x' });
export async function read(): Promise<string> {
  const answer = await client.workers.vms('w1');
  return ${read};
}
`;

describe('the contract at compile time', () => {
  it('accepts a handler that answers the declared shape', () => {
    expect(diagnosticsOf(handler('{ worker_id: request.params.id, vms: [], total: 0 }'))).toEqual([]);
  }, 60_000);

  it('refuses a handler whose answer lost a field of the contract', () => {
    const errors = diagnosticsOf(handler('{ vms: [], total: 0 }'));
    expect(errors.join('\n')).toMatch(/worker_id/);
  }, 60_000);

  it('refuses a handler whose answer changed a field’s type', () => {
    const errors = diagnosticsOf(handler('{ worker_id: request.params.id, vms: [], total: "none" }'));
    expect(errors.join('\n')).toMatch(/total|string.*number/);
  }, 60_000);

  it('types SDK answers from the contract: a field it has reads, one it has not fails', () => {
    expect(diagnosticsOf(sdkReader('answer.worker_id + answer.vms[0]!.created_at.toISOString()'))).toEqual([]);
    expect(diagnosticsOf(sdkReader('answer.workerId')).join('\n')).toMatch(/workerId/);
  }, 60_000);
});
