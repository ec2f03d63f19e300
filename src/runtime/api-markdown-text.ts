/**
 * How one JSON Schema (as zod emits it for OpenAPI 3.1) reads in a Markdown table: its type in a
 * few words, what it allows, and the anchors GitHub gives headings. Used by api-markdown.ts.
 */
/** The part of JSON Schema (as zod emits it for OpenAPI 3.1) that the tables show. */
export interface Schema {
  $ref?: string;
  type?: string | string[];
  format?: string;
  description?: string;
  enum?: unknown[];
  const?: unknown;
  default?: unknown;
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean | Schema;
  items?: Schema;
  anyOf?: Schema[];
  oneOf?: Schema[];
  not?: Schema;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  maxItems?: number;
  pattern?: string;
}

// zod states every integer's safe range; those bounds say nothing to a reader.
const SAFE = Number.MAX_SAFE_INTEGER;

export function resolve(schema: Schema, schemas: Record<string, Schema>): Schema {
  return schema.$ref ? (schemas[refName(schema.$ref)] ?? {}) : schema;
}

export const refName = (ref: string) => ref.slice(ref.lastIndexOf('/') + 1);

// Schema headings say "(schema)" so that `Health` cannot take the anchor of the `health` tag.
export const schemaHeading = (name: string) => `### \`${name}\` (schema)`;
export const schemaLink = (name: string) => `[${name}](#${slug(schemaHeading(name).slice(4))})`;

/** A short type for a table cell: `string (date-time) \| null`, `array of Task`, `map of string`. */
export function typeOf(schema: Schema): string {
  if (schema.$ref) return schemaLink(refName(schema.$ref));
  if (schema.const !== undefined) return `\`${JSON.stringify(schema.const)}\``;
  const union = schema.anyOf ?? schema.oneOf;
  if (union) return joinTypes(union.map(typeOf));
  if (schema.not && Object.keys(schema.not).length === 0) return 'never';
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length === 0) return schema.properties ? 'object' : 'any';
  return types
    .map((type) => {
      if (type === 'array') return `array of ${typeOf(schema.items ?? {})}${keyList(schema.items)}`;
      if (type === 'object' && !schema.properties && typeof schema.additionalProperties === 'object') {
        const values = typeOf(schema.additionalProperties);
        return values === 'never' ? 'empty object' : `map of ${values}`;
      }
      return schema.format && type === 'string' ? `string (${schema.format})` : type;
    })
    .join(' \\| ');
}

/** ` (\`a\`, \`b\`)` for the items of an inline array of objects: the table stops one level above them. */
function keyList(schema: Schema | undefined): string {
  const keys = Object.keys(schema?.properties ?? {});
  return keys.length > 0 && !schema?.$ref ? ` (${keys.map((k) => `\`${k}\``).join(', ')})` : '';
}

/** `a \| b` from types that may be unions already, each alternative once. */
export function joinTypes(types: string[]): string {
  return [...new Set(types.flatMap((t) => t.split(' \\| ')))].join(' \\| ');
}

/** What the schema allows, in words: its description, choices, default and bounds. */
export function describe(schema: Schema): string {
  const parts: string[] = [];
  if (schema.description) parts.push(schema.description);
  if (schema.enum) parts.push(`one of ${schema.enum.map((v) => `\`${String(v)}\``).join(', ')}`);
  if (schema.default !== undefined) parts.push(`default \`${JSON.stringify(schema.default)}\``);
  const range = bounds(schema.minimum, schema.maximum);
  if (range) parts.push(range);
  const length = bounds(schema.minLength, schema.maxLength);
  if (length) parts.push(`length ${length}`);
  const items = bounds(schema.minItems, schema.maxItems);
  if (items) parts.push(`${items} items`);
  if (schema.pattern) parts.push(`pattern \`${schema.pattern}\``);
  if (schema.type === 'array' && schema.items) {
    const inner = describe(schema.items);
    if (inner) parts.push(`each: ${inner}`);
  }
  return parts.join('; ');
}

function bounds(min: number | undefined, max: number | undefined): string | null {
  const low = min !== undefined && Math.abs(min) < SAFE ? min : undefined;
  const high = max !== undefined && Math.abs(max) < SAFE ? max : undefined;
  if (low !== undefined && high !== undefined) return `${low}–${high}`;
  if (low !== undefined) return `≥ ${low}`;
  if (high !== undefined) return `≤ ${high}`;
  return null;
}

/** Table cells hold one line, and a `|` even inside code would end the cell. */
export function cell(text: string): string {
  return text.replace(/\r?\n/g, ' ').replace(/(?<!\\)\|/g, '\\|');
}

/**
 * Heading anchors as GitHub makes them (lowercase, punctuation dropped, spaces to hyphens, `-1`,
 * `-2` for repeats), so the contents link to headings without anchors of our own in the text.
 */
export class Slugger {
  private readonly seen = new Map<string, number>();

  peek(heading: string): string {
    const base = slug(heading);
    const count = this.seen.get(base) ?? 0;
    return count === 0 ? base : `${base}-${count}`;
  }

  take(heading: string): string {
    const anchor = this.peek(heading);
    const base = slug(heading);
    this.seen.set(base, (this.seen.get(base) ?? 0) + 1);
    return anchor;
  }
}

export const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^a-z0-9 _-]/g, '')
    .replace(/ /g, '-');
