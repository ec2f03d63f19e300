/**
 * EventBus: cluster events fanned out to every control-plane replica. Ids increase monotonically
 * across the cluster; the bus keeps a retention window so a client can resume after an id.
 */
import type { ClusterEvent, NewEvent } from '../domain/index.ts';

export type EventListener = (event: ClusterEvent) => void;

export type Replay = { events: ClusterEvent[] } | { gap: true; oldest: number | null };

export interface EventBus {
  readonly kind: string;
  publish(event: NewEvent): Promise<ClusterEvent>;
  /** Live events from now on; returns the unsubscribe function. */
  subscribe(listener: EventListener): () => void;
  /** Every retained event with an id strictly greater than `afterId`, or a gap when some were dropped. */
  replay(afterId: number, limit?: number): Promise<Replay>;
  /**
   * The id of the newest event published in the cluster (through any instance), or null when none
   * ever was. Every event published after this answer has a greater id, and `replay(latestId())`
   * gives exactly those: where a client that starts now can resume from without loss.
   */
  latestId(): Promise<number | null>;
  close(): Promise<void>;
}
