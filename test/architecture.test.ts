/**
 * The import-graph rules of .dependency-cruiser.cjs, run over src/ with dependency-cruiser's API:
 * src must have no violations, and a small tree that breaks every rule proves the rules bite
 * (including through type-only imports, which count like any other).
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cruise, type ICruiseOptions, type ICruiseResult, type IViolation } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CONFIG = join(ROOT, '.dependency-cruiser.cjs');

/** Cruises `<root>/src` with the project's rules, resolving against `<root>/tsconfig.json`. */
async function cruiseSrc(root: string): Promise<ICruiseResult> {
  const options: ICruiseOptions = await extractDepcruiseOptions(CONFIG);
  const tsConfigFile = join(root, 'tsconfig.json');
  const { output } = await cruise(
    ['src'],
    { ...options, baseDir: root, tsConfig: { fileName: tsConfigFile } },
    {},
    { tsConfig: extractTSConfig(tsConfigFile) },
  );
  if (typeof output === 'string') throw new Error(`dependency-cruiser returned a report, not a result: ${output}`);
  return output;
}

function describeViolation(v: IViolation): string {
  const line = `${v.rule.name}: ${v.from} → ${v.to}`;
  return v.cycle?.length ? `${line} (cycle: ${[v.from, ...v.cycle.map((step) => step.name)].join(' → ')})` : line;
}

function violations(result: ICruiseResult): string[] {
  return (result.summary.violations ?? []).map(describeViolation).sort();
}

describe('architecture: import-graph rules (.dependency-cruiser.cjs)', () => {
  it('src has no violations', async () => {
    const result = await cruiseSrc(ROOT);

    // The graph is real: modules were found, every relative `.ts` specifier resolved, and type-only
    // imports are in it (a rule cannot bite on an edge the cruise never saw).
    expect(result.summary.totalCruised).toBeGreaterThan(50);
    const unresolved = result.modules.flatMap((m) =>
      m.dependencies
        .filter((d) => d.couldNotResolve && d.module.startsWith('.'))
        .map((d) => `${m.source} → ${d.module}`),
    );
    expect(unresolved, 'local imports dependency-cruiser could not resolve').toEqual([]);
    const typeOnly = result.modules.flatMap((m) =>
      m.dependencies.filter((d) => d.dependencyTypes.includes('type-only')),
    );
    expect(typeOnly.length).toBeGreaterThan(0);

    const found = violations(result);
    expect(found.length, `dependency violations in src:\n${found.join('\n')}`).toBe(0);
  });

  describe('on a tree that breaks every rule', () => {
    let root: string;

    beforeAll(async () => {
      root = await mkdtemp(join(tmpdir(), 'aetherium-architecture-'));
      const { compilerOptions } = JSON.parse(await readFile(join(ROOT, 'tsconfig.json'), 'utf8')) as {
        compilerOptions: Record<string, unknown>;
      };
      const { types: _types, ...options } = compilerOptions;
      const files: Record<string, string> = {
        'tsconfig.json': JSON.stringify({ compilerOptions: options, include: ['src', 'test'] }),
        // server → adapters (a value import).
        'src/server/a.ts': "import { b } from '../adapters/b.ts';\nexport const a = b;\n",
        // adapters → runtime.
        'src/adapters/b.ts': "import { r } from '../runtime/r.ts';\nexport const b = r;\n",
        'src/runtime/r.ts': 'export const r = 1;\n',
        // domain ↔ domain, through type-only imports on both sides.
        'src/domain/x.ts': "import type { Y } from './y.ts';\nexport interface X {\n  y: Y | null;\n}\n",
        'src/domain/y.ts': "import type { X } from './x.ts';\nexport interface Y {\n  x: X | null;\n}\n",
        // domain → ports.
        'src/domain/z.ts': "import type { P } from '../ports/p.ts';\nexport type Z = P;\n",
        // ports → domain (allowed) and ports → adapters.
        'src/ports/p.ts':
          "import type { X } from '../domain/x.ts';\nimport type { b } from '../adapters/b.ts';\n" +
          'export interface P {\n  x: X;\n  b: typeof b;\n}\n',
        // scheduler → domain (allowed) and scheduler → ports, type-only.
        'src/scheduler/s.ts':
          "import type { X } from '../domain/x.ts';\nimport type { P } from '../ports/p.ts';\n" +
          'export const s = (p: P, x: X) => [p, x];\n',
        // src → test.
        'src/worker/w.ts': "import { helper } from '../../test/helper.ts';\nexport const w = helper;\n",
        'test/helper.ts': 'export const helper = 1;\n',
      };
      for (const [path, text] of Object.entries(files)) {
        await mkdir(dirname(join(root, path)), { recursive: true });
        await writeFile(join(root, path), text);
      }
    });

    afterAll(async () => {
      if (root) await rm(root, { recursive: true, force: true });
    });

    it('reports each rule, on exactly the offending imports', async () => {
      // A cycle is reported once, on whichever of its edges the cruise meets first: name it by its ends.
      const name = (v: IViolation) =>
        v.rule.name === 'no-circular'
          ? `${v.rule.name}: ${[v.from, v.to].sort().join(' ↔ ')}`
          : `${v.rule.name}: ${v.from} → ${v.to}`;
      const found = (await cruiseSrc(root)).summary.violations.map(name).sort();
      expect(found).toEqual(
        [
          'adapters-not-wiring: src/adapters/b.ts → src/runtime/r.ts',
          'domain-is-self-contained: src/domain/z.ts → src/ports/p.ts',
          'no-circular: src/domain/x.ts ↔ src/domain/y.ts',
          'ports-only-domain: src/ports/p.ts → src/adapters/b.ts',
          'roles-use-ports-not-adapters: src/server/a.ts → src/adapters/b.ts',
          'scheduler-only-domain: src/scheduler/s.ts → src/ports/p.ts',
          'src-not-tests-or-bench: src/worker/w.ts → test/helper.ts',
        ].sort(),
      );
    });
  });
});
