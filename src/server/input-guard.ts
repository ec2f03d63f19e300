/**
 * Strings no engine can keep are refused at the edge, wherever they occur: in a path parameter, a
 * query value or anywhere in a JSON body, values and keys alike. Those are a NUL character (U+0000:
 * Postgres refuses it in `text` and `jsonb`, and no command can take it in an argument) and an
 * unpaired UTF-16 surrogate (U+D800-U+DFFF without its partner: it has no UTF-8 encoding, `jsonb`
 * refuses it). Before this check they reached the database and came back as a 500.
 *
 * One `preValidation` hook on the root instance, rather than a refinement on the string schemas:
 * every route registered after it gets the check, including routes added later by someone who never
 * heard of it and strings no schema names (record keys, free-form values); a refinement would have
 * to be remembered on each new string field. The answer is the one a schema error gets: 400
 * `validation_failed` naming the field (`invalid body: args.0: must not contain a NUL character`).
 * WebSocket messages do not pass through hooks: their routes call `findUnstorable` themselves.
 */
import type { FastifyInstance } from 'fastify';
import { AetheriumError } from '../domain/index.ts';

export interface UnstorableString {
  /** Where it is: `args.0`, `labels["a b"]`; empty for the value itself. */
  field: string;
  /** JSON-pointer form, as schema errors give it: `/args/0`. */
  pointer: string;
  problem: string;
}

const UNPAIRED_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

function problemOf(text: string): string | null {
  if (text.includes('\0')) return 'must not contain a NUL character (U+0000)';
  const surrogate = UNPAIRED_SURROGATE.exec(text);
  if (!surrogate) return null;
  const hex = surrogate[0].charCodeAt(0).toString(16).toUpperCase();
  return `must not contain an unpaired UTF-16 surrogate (U+${hex}); send well-formed Unicode`;
}

interface Node {
  value: unknown;
  parent: Node | null;
  segment: string | number | null;
}

function pathOf(node: Node): (string | number)[] {
  const path: (string | number)[] = [];
  for (let n: Node | null = node; n && n.segment !== null; n = n.parent) path.unshift(n.segment);
  return path;
}

/** Keys are shown as they are when they are plain, else quoted and escaped: never a raw NUL in a message. */
function fieldOf(path: (string | number)[]): string {
  return path
    .map((s, i) =>
      typeof s === 'number' || /^[A-Za-z0-9_-]+$/.test(s) ? `${i === 0 ? '' : '.'}${s}` : `[${JSON.stringify(s)}]`,
    )
    .join('');
}

const pointerOf = (path: (string | number)[]) =>
  path.map((s) => `/${String(s).replaceAll('~', '~0').replaceAll('/', '~1')}`).join('');

/**
 * The first string in `root` (any JSON-like value) that cannot be stored, or null. Iterative, so a
 * deeply nested body cannot exhaust the stack.
 */
export function findUnstorable(root: unknown): UnstorableString | null {
  const stack: Node[] = [{ value: root, parent: null, segment: null }];
  while (stack.length > 0) {
    const node = stack.pop()!;
    const { value } = node;
    if (typeof value === 'string') {
      const problem = problemOf(value);
      if (problem) {
        const path = pathOf(node);
        return { field: fieldOf(path), pointer: pointerOf(path), problem };
      }
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], parent: node, segment: i });
    } else if (value !== null && typeof value === 'object' && !Buffer.isBuffer(value)) {
      const entries = Object.entries(value);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        const keyProblem = problemOf(key);
        if (keyProblem) {
          const path = [...pathOf(node), key];
          return { field: `${fieldOf(path)} (a key)`, pointer: pointerOf(path), problem: keyProblem };
        }
        stack.push({ value: child, parent: node, segment: key });
      }
    }
  }
  return null;
}

/** The 400 for an unstorable string in `where` (params, querystring, body, message). */
export function unstorableError(where: string, found: UnstorableString): AetheriumError {
  const message = found.problem;
  return new AetheriumError('validation_failed', `invalid ${where}: ${found.field || where}: ${message}`, [
    { path: found.pointer, message },
  ]);
}

export function installInputGuard(app: FastifyInstance): void {
  // Callback style: an async hook costs a promise on every request, and this one does no I/O.
  app.addHook('preValidation', (request, _reply, done) => {
    const parts = [
      ['params', request.params],
      ['querystring', request.query],
      ['body', request.body],
    ] as const;
    for (const [where, value] of parts) {
      const found = findUnstorable(value);
      if (found) return done(unstorableError(where, found));
    }
    done();
  });
}
