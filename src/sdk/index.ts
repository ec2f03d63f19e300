/**
 * The Aetherium TypeScript SDK (`import { Aetherium } from 'aetherium/sdk'`). See the README's SDK
 * section. Every data type is derived from the API contract (src/contract).
 */
export { Aetherium, Events } from './client.ts';
export type { ClientOptions } from './settings.ts';
export { DEFAULT_API_URL, DEFAULT_REQUEST_TIMEOUT_MS } from './settings.ts';
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
  ConfigError,
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
export {
  addContext,
  configPath,
  currentContext,
  listContexts,
  removeContext,
  resolveContext,
  useContext,
} from './config.ts';
export type { AddContextOptions, ConfigLocation, ContextInfo, ResolvedContext } from './config.ts';
export type * from './types.ts';
