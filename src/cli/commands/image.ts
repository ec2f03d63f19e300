/**
 * `aetherium image build [OUT]`: builds the qemu driver's guest image with image/build.sh (see
 * image/README.md), showing its steps (`build.sh: step 3/7: …`) numbered, with the elapsed time.
 * The rest of the script's output is kept back and shown only when it fails.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { type Command, Option } from 'commander';
import { CliError } from '../errors.ts';
import { EXIT } from '../exit-codes.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { onInterrupt } from '../interrupt.ts';
import { out, printJson } from '../output.ts';
import { Progress } from '../progress.ts';

const STEP = /^build\.sh: step (\d+)\/(\d+): (.*)$/;
const FAILURE = /^build\.sh: error: (.*)$/;
const TAIL = 20;

export interface BuildLine {
  kind: 'step' | 'error' | 'other';
  step?: number;
  steps?: number;
  text: string;
}

/** What one line of build.sh's output is. */
export function parseBuildLine(line: string): BuildLine {
  const step = STEP.exec(line);
  if (step) return { kind: 'step', step: Number(step[1]), steps: Number(step[2]), text: step[3]! };
  const failure = FAILURE.exec(line);
  if (failure) return { kind: 'error', text: failure[1]! };
  return { kind: 'other', text: line };
}

export function registerImageCommands(program: Command, global: () => GlobalOptions): void {
  const image = program.command('image').description('the guest image of the qemu driver');
  image
    .command('build')
    .description('build the guest image with image/build.sh (idempotent: at once when it is up to date)')
    .argument('[out]', 'where to write it (default: $AETHERIUM_IMAGE_DIR, else .aetherium/images/default)')
    .option('--force', 'rebuild it even when it is up to date')
    .addOption(new Option('--script <file>', 'the build script (default: the package’s image/build.sh)').hideHelp())
    .action(async (outDir: string | undefined, o: { force?: boolean; script?: string }) => {
      const g = global();
      const [{ BUILD_SCRIPT, DEFAULT_IMAGE_DIR }, { spawn }, { createInterface }] = await Promise.all([
        import('../../adapters/vmm/qemu/image.ts'),
        import('node:child_process'),
        import('node:readline'),
      ]);
      const dir = resolve(outDir ?? process.env.AETHERIUM_IMAGE_DIR ?? DEFAULT_IMAGE_DIR);
      const script = o.script ?? BUILD_SCRIPT;
      const progress = new Progress('image build: ', { enabled: !g.quiet });
      const child = spawn('sh', [script, dir], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, ...(o.force ? { AETHERIUM_IMAGE_FORCE: '1' } : {}) },
      });
      const tail: string[] = [];
      let failure: string | null = null;
      let upToDate = false;
      const onLine = (line: string) => {
        const parsed = parseBuildLine(line);
        if (parsed.kind === 'step') return progress.phase(`step ${parsed.step}/${parsed.steps}: ${parsed.text}`);
        if (parsed.kind === 'error') failure = parsed.text;
        if (/^build\.sh: up to date/.test(line)) upToDate = true;
        tail.push(line);
        if (tail.length > TAIL) tail.shift();
      };
      createInterface({ input: child.stdout }).on('line', onLine);
      createInterface({ input: child.stderr }).on('line', onLine);
      const interrupt = onInterrupt();
      interrupt.signal.addEventListener('abort', () => child.kill('SIGTERM'), { once: true });
      const code = await new Promise<number | null>((done, reject) => {
        child.once('error', (err) => reject(new CliError(`cannot run ${script}: ${err.message}`, EXIT.ERROR)));
        child.once('close', (exit) => done(exit));
      }).finally(() => interrupt.dispose());
      if (interrupt.signal.aborted) {
        progress.fail();
        throw new CliError('interrupted: the image build was stopped', EXIT.INTERRUPTED);
      }
      if (code !== 0) {
        progress.fail();
        for (const line of tail) process.stderr.write(`  ${line}\n`);
        throw new CliError(`${script} failed (exit ${code}): ${failure ?? tail.at(-1) ?? 'no output'}`, EXIT.ERROR);
      }
      progress.succeed(upToDate ? 'up to date' : 'built');
      let manifest: Record<string, unknown> = {};
      try {
        manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
      } catch {
        /* a script that writes none (--script): say where, without the details */
      }
      if (outputFormat(g) === 'json') return printJson({ dir, up_to_date: upToDate, manifest });
      const kernel = manifest.kernel as { release?: string } | undefined;
      out(
        `guest image ${upToDate ? 'is up to date' : 'built'} in ${dir}${kernel?.release ? ` (kernel ${kernel.release})` : ''}\n`,
      );
    });
}
