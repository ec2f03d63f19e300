/** What the HTTP routes are given: services decorated once, shared by every route plugin. */
import type { WorkerLogs } from './agent/log-relay.ts';
import type { AuditEntry, AuditFilter } from '../domain/index.ts';
import type { ExecChannels } from '../ports/exec-channels.ts';
import type { EventBus } from '../ports/event-bus.ts';
import type { EventHub } from './events/event-hub.ts';
import type { HealthReport } from './health.ts';
import type { JoinTokenService } from './services/join-token-service.ts';
import type { SchedulerLoop } from './scheduler-loop.ts';
import type { TaskService } from './services/task-service.ts';
import type { TokenService } from './services/token-service.ts';
import type { VmService } from './services/vm-service.ts';
import type { WorkerService } from './services/worker-service.ts';

export interface ApiDeps {
  vms: VmService;
  tasks: TaskService;
  tokens: TokenService;
  joinTokens: JoinTokenService;
  /**
   * The CA that signs worker certificates, as join tokens pin it (`sha256:<hex>`); null when this
   * control plane has none, and then it creates no join tokens. Read on every create.
   */
  agentCa: () => { fingerprint: string } | null;
  /** The audit log, newest first. */
  audit: (filter: AuditFilter) => Promise<AuditEntry[]>;
  workers: WorkerService;
  scheduler: SchedulerLoop;
  /** Replay for the event stream's resume. */
  events: EventBus;
  health: () => Promise<HealthReport>;
  /** How long exec waits for its command before answering 202 with the task. */
  execWaitMs: number;
  channels: ExecChannels;
  /** Worker logs over the agent channel; null without an agent port (`aetherium dev`). */
  workerLogs: () => WorkerLogs | null;
  /** The WebSocket fan-out of events; absent when websockets are disabled. */
  hub: EventHub | null;
}
