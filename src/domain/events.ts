/** Cluster events, in the envelope every subscriber sees: `{ id, type, timestamp, data }`. */
export const EVENT_TYPES = [
  'worker.joined',
  'worker.left',
  'worker.updated',
  'worker.draining',
  'worker.drained',
  'worker.activated',
  'worker.resources',
  'vm.created',
  'vm.state_changed',
  'vm.deleted',
  'task.created',
  'task.scheduled',
  'task.requeued',
  'task.started',
  'task.completed',
  'task.failed',
  'task.cancel_requested',
  'task.cancelled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export interface ClusterEvent<T = Record<string, unknown>> {
  /** Monotonically increasing across the cluster; a client resumes after the last id it saw. */
  id: number;
  type: EventType;
  timestamp: string;
  data: T;
}

export type NewEvent = Pick<ClusterEvent, 'type' | 'data'>;

export function topicOf(type: EventType): string {
  return type.slice(0, type.indexOf('.'));
}
