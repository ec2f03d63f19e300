/** What the HTTP routes are given: services decorated once, shared by every route plugin. */
import type { EventBus } from '../ports/event-bus.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { ServiceRegistry } from '../ports/service-registry.ts';
import type { Store } from '../ports/store.ts';
import type { TaskQueue } from '../ports/task-queue.ts';
import type { SchedulerLoop } from './scheduler-loop.ts';
import type { EventHub } from './events/event-hub.ts';
import type { HealthReport } from './health.ts';
import type { VmService } from './services/vm-service.ts';
import type { WorkerService } from './services/worker-service.ts';

export interface ApiDeps {
  store: Store;
  queue: TaskQueue;
  events: EventBus;
  registry: ServiceRegistry;
  vms: VmService;
  workers: WorkerService;
  scheduler: SchedulerLoop;
  health: () => Promise<HealthReport>;
  /** How long exec waits for its command before answering 202 with the task. */
  execWaitMs: number;
  channels: ExecChannels;
  /** The WebSocket fan-out of events; absent when websockets are disabled. */
  hub: EventHub | null;
}
