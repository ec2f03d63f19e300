/**
 * API key records as the authenticator reads them: from the store at most once per key every
 * RECHECK_MS, not once per request. Reading the record on every request made authentication a
 * database round trip per call, the largest cost of a cheap read.
 *
 * The bound this keeps: a key revoked (or re-scoped) anywhere in the cluster is refused by every
 * replica within RECHECK_MS of the revocation being committed, plus one store read; on the replica
 * that revoked it, at once (`forget`). Expiry is exact: it is compared with the clock on every
 * request. Unknown ids are not remembered: a key created a moment ago works at once everywhere.
 *
 * Concurrent requests with the same key share one store read (single flight), and a read that
 * began before a `forget` never fills the cache after it.
 */
import type { ApiKeyRecord } from '../../domain/index.ts';

export const RECHECK_MS = 1000;

interface Entry {
  record: ApiKeyRecord;
  /** When the store read that gave this record began. */
  readAt: number;
}

export class KeyRecords {
  private readonly entries = new Map<string, Entry>();
  private readonly reading = new Map<string, { generation: number; promise: Promise<ApiKeyRecord | null> }>();
  /** Last-use writes this process made, so a cached record does not make every request look due. */
  private readonly touched = new Map<string, number>();
  private generation = 0;

  constructor(
    private readonly read: (id: string) => Promise<ApiKeyRecord | null>,
    private readonly recheckMs = RECHECK_MS,
    private readonly max = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** The record, read from the store when the one held is older than the recheck interval. */
  get(id: string): Promise<ApiKeyRecord | null> | ApiKeyRecord {
    const entry = this.entries.get(id);
    if (entry && this.now() - entry.readAt < this.recheckMs) return entry.record;
    const pending = this.reading.get(id);
    if (pending && pending.generation === this.generation) return pending.promise;
    return this.load(id);
  }

  private load(id: string): Promise<ApiKeyRecord | null> {
    const generation = this.generation;
    const readAt = this.now();
    const promise = this.read(id).then(
      (record) => {
        if (this.reading.get(id)?.promise === promise) this.reading.delete(id);
        if (generation === this.generation) {
          if (record) {
            if (this.entries.size >= this.max && !this.entries.has(id)) this.entries.clear();
            this.entries.set(id, { record, readAt });
          } else this.entries.delete(id);
        }
        return record;
      },
      (err: unknown) => {
        if (this.reading.get(id)?.promise === promise) this.reading.delete(id);
        throw err;
      },
    );
    this.reading.set(id, { generation, promise });
    return promise;
  }

  /**
   * Every record is read again on its next use: called after this replica revoked a key. Reads
   * under way now are answered but not kept.
   */
  forget(): void {
    this.generation++;
    this.entries.clear();
    this.reading.clear();
  }

  /** When last use was last recorded for this key: the store's record or this process's write. */
  lastUsed(record: ApiKeyRecord): number {
    return Math.max(record.last_used_at?.getTime() ?? 0, this.touched.get(record.id) ?? 0);
  }

  markUsed(id: string, at: number): void {
    if (this.touched.size >= this.max && !this.touched.has(id)) this.touched.clear();
    this.touched.set(id, at);
  }
}
