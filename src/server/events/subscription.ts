/**
 * What a client of the event stream wants: topics (`worker`, `vm`, `task`) and keys (a worker id,
 * a VM id). An event matches when its topic is wanted (all when none given) and it concerns the
 * given worker and VM (events that name neither pass a key filter only if they name nothing).
 */
import { z } from 'zod';
import { type ClusterEvent, topicOf } from '../../domain/index.ts';

export const TOPICS = ['worker', 'vm', 'task'] as const;

const list = z
  .string()
  .transform((s) =>
    s
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean),
  )
  .pipe(z.array(z.enum(TOPICS)));

export const subscriptionQuery = z
  .object({
    topics: list.optional(),
    topic: list.optional(),
    worker_id: z.string().min(1).max(128).optional(),
    vm_id: z.string().min(1).max(128).optional(),
    since: z.coerce.number().int().min(0).optional(),
  })
  .strict();

export const subscribeMessage = z
  .object({
    type: z.literal('subscribe'),
    topics: z.array(z.enum(TOPICS)).optional(),
    worker_id: z.string().min(1).max(128).nullable().optional(),
    vm_id: z.string().min(1).max(128).nullable().optional(),
  })
  .strict();

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

export function matches(subscription: Subscription, event: ClusterEvent): boolean {
  if (subscription.topics && !subscription.topics.has(topicOf(event.type))) return false;
  if (subscription.workerId && event.data.worker_id !== subscription.workerId) return false;
  if (subscription.vmId && !('vm_id' in event.data && event.data.vm_id === subscription.vmId)) return false;
  return true;
}
