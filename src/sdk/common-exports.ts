/**
 * What both entry points of the SDK export: the Node one (index.ts, with configuration and
 * contexts) and the browser one (browser.ts, with the domain's vocabularies). One list, so that the
 * two never drift apart.
 */
export { Events } from './base-client.ts';
export { Vm, Vms } from './vms.ts';
export type { CreateOptions, CreateProgress, RunOptions, TaskActionOptions, WaitUntil } from './vms.ts';
export type { ExecOptions, ExecResult, StdinSource } from './exec.ts';
export type { EventFilter, EventHandler, Gap, OpenInfo, SubscribeOptions, Subscription, Topic } from './events.ts';
export { Audit, Cluster, Schedule, Tasks, Tokens, Workers } from './resources.ts';
export type { LogFollow, Signal, WaitOptions } from './resources.ts';
export type { CallOptions, RestRouteName, RouteAnswer, RouteInput, RouteOutput } from './call.ts';
export {
  AbortError,
  ApiError,
  ConflictError,
  ForbiddenError,
  NotFoundError,
  ProtocolError,
  RateLimitError,
  TaskCancelledError,
  TaskFailedError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
} from './errors.ts';
export type { ClientErrorCode, FieldIssue, SdkErrorCode, TimeoutKind } from './errors.ts';
export type { ErrorCode } from '../domain/errors.ts';
export type * from './types.ts';
// A VM's boot phases in order, and their offsets from its `phases` (what `aetherium vm get` draws).
export { bootWaterfall, VM_BOOT_PHASES } from '../domain/vm.ts';
export type { VmBootPhase, WaterfallStep } from '../domain/vm.ts';
