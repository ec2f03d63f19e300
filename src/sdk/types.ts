/**
 * The SDK's public data types, every one derived from the API contract (src/contract): arguments
 * from the request schemas (z.input), results from the response schemas (z.output: times are
 * `Date`s). None is written by hand, so a change of the API shows up here.
 */
import type { TaskType } from '../domain/task.ts';
import type { RestRouteName, RouteInput, RouteOutput } from './call.ts';

type Body<N extends RestRouteName> = NonNullable<RouteInput<N>['body']>;
type Query<N extends RestRouteName> = Loosen<NonNullable<RouteInput<N>['query']>>;

/**
 * A query as the SDK takes it: the route's query input, where a flag the wire spells
 * `'true' | 'false'` also takes a boolean, and a coerced number or time also takes a number or a Date.
 */
export type Loosen<T> = {
  [K in keyof T]: unknown extends T[K]
    ? string | number | Date | undefined
    : Exclude<T[K], undefined> extends 'true' | 'false' | '1' | '0'
      ? T[K] | boolean
      : T[K];
};

// VMs
/** What `vms.create` takes: the body of `POST /vms`. */
export type CreateVmSpec = Body<'createVm'>;
/** A VM as lists show it. */
export type VmRecord = RouteOutput<'listVms'>['vms'][number];
/** A VM as `GET /vms/{id}` shows it, with `pending_reason`. */
export type VmDetail = RouteOutput<'getVm'>;
/** What a Vm handle holds: a VM, with `pending_reason` when it came from `GET /vms/{id}`. */
export type VmData = VmRecord & { pending_reason?: VmDetail['pending_reason'] | undefined };
export type VmStatus = VmRecord['status'];
export type DriverName = NonNullable<VmRecord['driver']>;
export type VmCreated = RouteOutput<'createVm'>;
/** The answer of delete, start and stop: the task and how far it got. */
export type VmTaskResult = RouteOutput<'deleteVm'>;
export type VmListFilter = Query<'listVms'>;
/** A command's answer over REST (`POST /vms/{id}/exec`): its result, or the task still running. */
export type ExecAnswer = RouteOutput<'execVm'>;
export type ExecDone = Extract<ExecAnswer, { exit_code: number }>;
export type Execution = RouteOutput<'listExecutions'>['executions'][number];
export type ExecRequest = Body<'execVm'>;

// Tasks
export type Task = RouteOutput<'getTask'>;
export type TaskOf<T extends TaskType> = Extract<Task, { type: T }>;
export type TaskStatus = Task['status'];
export type TaskListFilter = Query<'listTasks'>;
export type TaskCancelled = RouteOutput<'cancelTask'>;
export type PlacementRecord = NonNullable<TaskOf<'vm:create'>['placement']>;

// Workers and the cluster
export type Worker = RouteOutput<'getWorker'>;
export type WorkerStatus = Worker['status'];
export type WorkerListFilter = Query<'listWorkers'>;
export type WorkerVms = RouteOutput<'listWorkerVms'>;
export type WorkerControl = RouteOutput<'drainWorker'>;
export type WorkerRevoked = RouteOutput<'revokeWorker'>;
export type DrainOptions = Body<'drainWorker'>;
export type MetricList = RouteOutput<'workerMetrics'>;
export type MetricSample = MetricList['metrics'][number];
export type WorkerLogs = RouteOutput<'workerLogs'>;
export type WorkerLogLine = WorkerLogs['lines'][number];
export type WorkerLogsQuery = Omit<Query<'workerLogs'>, 'follow'>;
export type ClusterStats = RouteOutput<'clusterStats'>;
export type ClusterDistribution = RouteOutput<'clusterDistribution'>;
export type PlanRequest = Body<'planSchedule'>;
export type SchedulePlan = RouteOutput<'planSchedule'>;

// Access
export type ApiKey = RouteOutput<'revokeToken'>;
export type ApiKeyCreated = RouteOutput<'createToken'>;
export type CreateTokenRequest = Body<'createToken'>;
export type CreateJoinTokenRequest = Body<'createJoinToken'>;
export type JoinToken = RouteOutput<'revokeJoinToken'>;
export type JoinTokenCreated = RouteOutput<'createJoinToken'>;
export type AuditEntry = RouteOutput<'audit'>['entries'][number];
export type AuditQuery = Query<'audit'>;
export type TokenListQuery = Query<'listTokens'>;
export type HealthReport = RouteOutput<'health'>;
/** The caller as the server sees it (`GET /auth/whoami`). */
export type Identity = RouteOutput<'whoami'>;

// Events
export type { ClusterEvent, ClusterEventOf, EventType, EventData } from '../domain/events.ts';
