/** Output for people (tables) or for programs (--json). */
import Table from 'cli-table3';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function printTable(head: string[], rows: (string | number | boolean | null | undefined)[][]): void {
  if (rows.length === 0) {
    process.stdout.write('(none)\n');
    return;
  }
  const table = new Table({
    head,
    style: { head: [], border: [] },
    chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
  });
  for (const row of rows) table.push(row.map((cell) => (cell === null || cell === undefined ? '-' : String(cell))));
  process.stdout.write(`${table.toString()}\n`);
}

export function printFields(record: Record<string, unknown>, keys?: string[]): void {
  const entries = (keys ?? Object.keys(record)).filter((k) => k in record).map((k) => [k, record[k]] as const);
  const width = Math.max(...entries.map(([k]) => k.length));
  for (const [key, value] of entries) {
    const text =
      value === null || value === undefined ? '-' : typeof value === 'object' ? JSON.stringify(value) : String(value);
    process.stdout.write(`${key.padEnd(width)}  ${text}\n`);
  }
}

export function shortId(id: string | null | undefined): string {
  return id ? id.slice(0, 8) : '-';
}

/** `k=v` pairs from repeated flags. */
export function collectPairs(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const index = value.indexOf('=');
  if (index <= 0) throw new Error(`expected KEY=VALUE, got ${JSON.stringify(value)}`);
  return { ...previous, [value.slice(0, index)]: value.slice(index + 1) };
}
