/**
 * The example type-checks as a user's project would see the SDK: `aetherium/sdk` resolved through
 * the package's exports to the published declarations in dist/ (built before the tests run).
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const run = promisify(execFile);

describe('examples/', () => {
  it('type-checks against the published types (npx tsc -p examples)', async () => {
    expect(existsSync(join(root, 'dist/sdk/index.d.ts')), 'the build wrote the SDK declarations').toBe(true);
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const result = await run(process.execPath, [tsc, '-p', 'examples', '--listFiles'], { cwd: root }).catch(
      (err: { stdout?: string; stderr?: string }) => {
        throw new Error(`tsc -p examples failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`);
      },
    );
    // It used the declarations, not the sources: what a dependent package gets.
    expect(result.stdout).toContain(join(root, 'dist/sdk/index.d.ts'));
    expect(result.stdout).not.toContain(join(root, 'src/sdk/index.ts'));
  }, 120_000);
});
