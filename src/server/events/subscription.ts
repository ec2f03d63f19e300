/**
 * What a client of the event stream wants: topics (`worker`, `vm`, `task`) and keys (a worker id,
 * a VM id). An event matches when its topic is wanted (all when none given) and it concerns the
 * given worker and VM (events that name neither pass a key filter only if they name nothing).
 */
import { type ClusterEvent, topicOf } from '../../domain/index.ts';

export interface Subscription {
  topics: ReadonlySet<string> | null;
  workerId: string | null;
  vmId: string | null;
}

export function subscriptionOf(input: {
  topics?: readonly string[] | undefined;
  topic?: readonly string[] | undefined;
  worker_id?: string | null | undefined;
  vm_id?: string | null | undefined;
}): Subscription {
  const topics = [...(input.topics ?? []), ...(input.topic ?? [])];
  return {
    topics: topics.length > 0 ? new Set(topics) : null,
    workerId: input.worker_id ?? null,
    vmId: input.vm_id ?? null,
  };
}

/** `topic`: the event's, when the caller read it already (the hub reads it once for every client). */
export function matches(subscription: Subscription, event: ClusterEvent, topic?: string): boolean {
  if (subscription.topics && !subscription.topics.has(topic ?? topicOf(event.type))) return false;
  if (subscription.workerId && event.data.worker_id !== subscription.workerId) return false;
  if (subscription.vmId && !('vm_id' in event.data && event.data.vm_id === subscription.vmId)) return false;
  return true;
}
