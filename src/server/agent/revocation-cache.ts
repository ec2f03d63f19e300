/**
 * The certificate cut-offs of every worker, read at most once per `maxAgeMs` for all the agent
 * sessions of this replica together: each session re-checks its certificate every couple of
 * seconds, and with 10,000 workers connected one query per session was as many store reads as
 * there were heartbeats. Concurrent checks share one read. A connection being admitted still
 * reads its own worker's cut-off straight from the store.
 */
import type { Store } from '../../ports/store.ts';

export class RevocationCache {
  private cutoffs = new Map<string, Date>();
  private loadedAt = Number.NEGATIVE_INFINITY;
  private loading: Promise<void> | null = null;

  constructor(
    private readonly store: Pick<Store, 'listWorkerCertificateRevocations'>,
    private readonly maxAgeMs: number,
  ) {}

  /** The worker's cut-off (its certificates issued at or before it are refused), at most `maxAgeMs` old. */
  async cutoff(workerId: string, now = Date.now()): Promise<Date | null> {
    if (now - this.loadedAt >= this.maxAgeMs) {
      this.loading ??= this.load().finally(() => {
        this.loading = null;
      });
      await this.loading;
    }
    return this.cutoffs.get(workerId) ?? null;
  }

  private async load(): Promise<void> {
    const startedAt = Date.now();
    this.cutoffs = await this.store.listWorkerCertificateRevocations();
    // Stamped with when the read began: a revocation written during it is seen by the next one.
    this.loadedAt = startedAt;
  }
}
