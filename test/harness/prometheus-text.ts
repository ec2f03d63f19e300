/**
 * Reading a Prometheus text exposition in tests: samples by `name{labels}`, and sums over the
 * series of one metric whose labels include the given ones (across workers, replicas, buckets).
 */
export type Samples = Map<string, number>;

export function parseSamples(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

/** The sum of `name`'s series carrying every label in `labels` (exact values). */
export function sumOf(samples: Samples, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const [key, value] of samples) {
    const brace = key.indexOf('{');
    if ((brace === -1 ? key : key.slice(0, brace)) !== name) continue;
    const text = brace === -1 ? '' : key.slice(brace);
    if (Object.entries(labels).every(([k, v]) => text.includes(`${k}="${v}"`))) sum += value;
  }
  return sum;
}

/** Sums each key over several scrapes (every worker, every replica). */
export function merged(all: Samples[]): Samples {
  const out: Samples = new Map();
  for (const samples of all) for (const [k, v] of samples) out.set(k, (out.get(k) ?? 0) + v);
  return out;
}
