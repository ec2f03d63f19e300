/** Every relative link in the README and the documents points at a file of the checkout. */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const documents = [
  'README.md',
  ...readdirSync(join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];

describe('documentation links', () => {
  it('the README links every operator document', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    for (const doc of [
      'PRODUCTION-DEPLOYMENT',
      'WORKER-SETUP',
      'OPERATIONS',
      'TROUBLESHOOTING',
      'METRICS',
      'DISTRIBUTED-WORKER-API',
    ])
      expect(readme, doc).toContain(`](docs/${doc}.md)`);
  });

  it.each(documents)('%s links only files that exist', (doc) => {
    // Code is not prose: a pattern such as `[a-z]([a-z0-9-]*)` in a code span is not a link.
    const text = readFileSync(join(root, doc), 'utf8')
      .replace(/```[\s\S]*?```/g, '')
      .replace(/`[^`\n]*`/g, '');
    const missing = [...text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)]
      .map((m) => m[1]!)
      .filter((target) => !/^[a-z]+:/.test(target))
      .filter((target) => !existsSync(join(root, dirname(doc), target)));
    expect(missing).toEqual([]);
  });
});
