/**
 * docs/DISTRIBUTED-WORKER-API.md is generated from the OpenAPI document the server builds now (not
 * from docs/openapi.json), so a route added to the contract fails this test until the reference is
 * regenerated; and the reference says what a reader needs of each route.
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { type OpenApiDocument, renderApiMarkdown } from '../src/runtime/api-markdown.ts';
import { openApiDocument } from '../src/runtime/openapi-document.ts';

const FILE = new URL('../docs/DISTRIBUTED-WORKER-API.md', import.meta.url);
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

let doc: OpenApiDocument;
let markdown: string;

beforeAll(async () => {
  doc = (await openApiDocument()) as OpenApiDocument;
  markdown = renderApiMarkdown(doc);
}, 120_000);

/** The text of one route's section: from its heading to the next heading of the same level or above. */
function section(method: string, path: string): string {
  const start = markdown.indexOf(`\n### \`${method} ${path}\`\n`);
  expect(start, `no section for ${method} ${path}`).toBeGreaterThanOrEqual(0);
  const next = markdown.slice(start + 1).search(/\n##+ /);
  return markdown.slice(start, next < 0 ? undefined : start + 1 + next);
}

describe('docs/DISTRIBUTED-WORKER-API.md', () => {
  it('is what the generator writes from the live OpenAPI document', () => {
    const committed = readFileSync(FILE, 'utf8');
    expect(committed === markdown, 'docs/DISTRIBUTED-WORKER-API.md is stale: run `npm run docs:api`').toBe(true);
  });

  it('has a heading for every operation of the document', () => {
    const operations = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
      METHODS.filter((m) => item[m]).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(operations.length).toBeGreaterThan(30);
    const missing = operations.filter((op) => !markdown.includes(`\n### \`${op}\`\n`));
    expect(missing).toEqual([]);
  });

  it('lists the body fields of POST /api/v1/vms with their constraints, and the role it needs', () => {
    const create = section('POST', '/api/v1/vms');
    expect(create).toMatch(/\| `name` \| string \| no \| pattern /);
    expect(create).toMatch(/\| `vcpus` \| integer \| no \| default `1`; 1–256 \|/);
    expect(create).toContain('Role: **operator**');
    expect(create).toMatch(/\| `idempotency-key` \| header \|/);
    expect(section('POST', '/api/v1/workers/{id}/drain')).toContain('Role: **admin**');
    expect(section('GET', '/health')).toContain('Role: **anyone**');
  });

  it('names each error code with its status, and links only to anchors it has', () => {
    expect(markdown).toContain('| `not_found` | 404 | no |');
    expect(markdown).toContain('| `unavailable` | 503 | yes |');
    const anchors = new Set(
      [...markdown.matchAll(/^#+ (.+)$/gm)].map((m) =>
        (m[1] ?? '')
          .toLowerCase()
          .replace(/[^a-z0-9 _-]/g, '')
          .replace(/ /g, '-'),
      ),
    );
    const links = [...markdown.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1] ?? '');
    expect(links.length).toBeGreaterThan(50);
    expect(links.filter((link) => !anchors.has(link))).toEqual([]);
  });
});
