/**
 * The API contract: every route under /api/v1 with its inputs and the answer for each status. The
 * server registers its routes from this table (so the serializer checks every answer against it and
 * /api/docs shows it), and the SDK types its calls from the same table, so neither can drift from
 * the other. `errors` lists the error statuses a route answers beside the ones every route may
 * (COMMON_ERROR_STATUSES); each is the one error body.
 */
import type { z } from 'zod';
import {
  apiKey,
  apiKeyCreated,
  apiKeyList,
  auditList,
  authConfig,
  identity,
  joinToken,
  joinTokenCreated,
  joinTokenList,
  oidcToken,
  oidcTokenBody,
} from './access.ts';
import { COMMON_ERROR_STATUSES, errorBody } from './errors.ts';
import { healthReport } from './health.ts';
import {
  auditQuery,
  cancelQuery,
  createJoinTokenBody,
  createTokenBody,
  createVmBody,
  createVmHeaders,
  drainBody,
  eligibilityBody,
  execBody,
  idParam,
  listTasksQuery,
  listTokensQuery,
  listVmsQuery,
  listWorkersQuery,
  logsQuery,
  metricsQuery,
  planBody,
  subscriptionQuery,
  waitQuery,
} from './requests.ts';
import { task, taskCancelled, taskList } from './task.ts';
import { execDone, execPending, executionList, vmCreated, vmDetail, vmList, vmTaskAccepted } from './vm.ts';
import {
  clusterDistribution,
  clusterStats,
  metricList,
  schedulePlan,
  worker,
  workerControl,
  workerList,
  workerLogs,
  workerRevoked,
  workerVms,
} from './worker.ts';

export type Method = 'GET' | 'POST' | 'DELETE';

export interface RouteSpec {
  method: Method;
  /** Under /api/v1, in Fastify's form (`/vms/:id`). */
  path: string;
  tags: readonly string[];
  summary: string;
  params?: z.ZodType;
  querystring?: z.ZodType;
  body?: z.ZodType;
  headers?: z.ZodType;
  /** The success answers, by status. */
  responses: Readonly<Record<number, z.ZodType>>;
  /** Error statuses beside COMMON_ERROR_STATUSES. */
  errors?: readonly number[];
  /** Headers its success answers may carry, with what they mean. */
  replyHeaders?: Readonly<Record<string, string>>;
  /** A WebSocket route: its messages are documented in the README, its refusals here. */
  websocket?: true;
}

const route = <const S extends RouteSpec>(spec: S): S => spec;
const vmTask = { 200: vmTaskAccepted, 202: vmTaskAccepted } as const;

export const ROUTES = {
  health: route({
    method: 'GET',
    path: '/health',
    tags: ['health'],
    summary: "Each engine's state and any warning",
    responses: { 200: healthReport, 503: healthReport },
  }),

  createVm: route({
    method: 'POST',
    path: '/vms',
    tags: ['vms'],
    summary: 'Create a VM (placed by the scheduler); an Idempotency-Key makes a retry return the same VM',
    body: createVmBody,
    querystring: waitQuery,
    headers: createVmHeaders,
    responses: { 200: vmCreated, 201: vmCreated, 202: vmCreated },
    replyHeaders: {
      'Idempotent-Replayed': '`true` when an earlier request with the same Idempotency-Key wrote the VM',
    },
    errors: [409],
  }),
  listVms: route({
    method: 'GET',
    path: '/vms',
    tags: ['vms'],
    summary: 'List VMs',
    querystring: listVmsQuery,
    responses: { 200: vmList },
  }),
  getVm: route({
    method: 'GET',
    path: '/vms/:id',
    tags: ['vms'],
    summary: 'Get a VM by id or name',
    params: idParam,
    responses: { 200: vmDetail },
    errors: [404],
  }),
  deleteVm: route({
    method: 'DELETE',
    path: '/vms/:id',
    tags: ['vms'],
    summary: 'Delete a VM on the worker that holds it',
    params: idParam,
    querystring: waitQuery,
    responses: vmTask,
    errors: [404, 409],
  }),
  startVm: route({
    method: 'POST',
    path: '/vms/:id/start',
    tags: ['vms'],
    summary: 'Start a VM',
    params: idParam,
    querystring: waitQuery,
    responses: vmTask,
    errors: [404, 409],
  }),
  stopVm: route({
    method: 'POST',
    path: '/vms/:id/stop',
    tags: ['vms'],
    summary: 'Stop a VM',
    params: idParam,
    querystring: waitQuery,
    responses: vmTask,
    errors: [404, 409],
  }),
  execVm: route({
    method: 'POST',
    path: '/vms/:id/exec',
    tags: ['vms'],
    summary: 'Run a command in a VM and return its output',
    params: idParam,
    body: execBody,
    responses: { 200: execDone, 202: execPending },
    errors: [404, 409, 502],
  }),
  execStream: route({
    method: 'GET',
    path: '/vms/:id/exec/stream',
    tags: ['vms'],
    summary: 'Run one command interactively over WebSocket (stdin, stdout, stderr, exit code)',
    params: idParam,
    responses: {},
    errors: [426],
    websocket: true,
  }),
  listExecutions: route({
    method: 'GET',
    path: '/vms/:id/executions',
    tags: ['vms'],
    summary: 'Commands run in a VM',
    params: idParam,
    responses: { 200: executionList },
    errors: [404],
  }),

  listTasks: route({
    method: 'GET',
    path: '/tasks',
    tags: ['tasks'],
    summary: 'List tasks',
    querystring: listTasksQuery,
    responses: { 200: taskList },
  }),
  getTask: route({
    method: 'GET',
    path: '/tasks/:id',
    tags: ['tasks'],
    summary: 'Get a task, with its result and placement explanation',
    params: idParam,
    responses: { 200: task },
    errors: [404],
  }),
  cancelTask: route({
    method: 'POST',
    path: '/tasks/:id/cancel',
    tags: ['tasks'],
    summary: 'Cancel a task: a waiting one never runs, a running one is aborted on its worker',
    params: idParam,
    querystring: cancelQuery,
    responses: { 200: taskCancelled, 202: taskCancelled },
    errors: [404, 409],
  }),

  listWorkers: route({
    method: 'GET',
    path: '/workers',
    tags: ['workers'],
    summary: 'List workers (?zone=, ?status=, ?capability=)',
    querystring: listWorkersQuery,
    responses: { 200: workerList },
  }),
  getWorker: route({
    method: 'GET',
    path: '/workers/:id',
    tags: ['workers'],
    summary: 'Worker details',
    params: idParam,
    responses: { 200: worker },
    errors: [404],
  }),
  listWorkerVms: route({
    method: 'GET',
    path: '/workers/:id/vms',
    tags: ['workers'],
    summary: 'VMs on a worker',
    params: idParam,
    responses: { 200: workerVms },
    errors: [404],
  }),
  workerMetrics: route({
    method: 'GET',
    path: '/workers/:id/metrics',
    tags: ['workers'],
    summary:
      'Resource usage history of a worker: the newest raw samples (?limit=), or a timeline (?since=24h&step=5m, oldest first)',
    params: idParam,
    querystring: metricsQuery,
    responses: { 200: metricList },
    errors: [404],
  }),
  workerLogs: route({
    method: 'GET',
    path: '/workers/:id/logs',
    tags: ['workers'],
    summary: "A worker's recent log lines (?since=10m, ?limit=; ?follow=true streams them as NDJSON instead)",
    params: idParam,
    querystring: logsQuery,
    responses: { 200: workerLogs },
    errors: [404],
  }),
  drainWorker: route({
    method: 'POST',
    path: '/workers/:id/drain',
    tags: ['workers'],
    summary:
      'Drain a worker: no new VMs, queued creates move elsewhere, VMs left at the deadline are deleted (default deadline 1 h; force: now; no_deadline: wait for them)',
    params: idParam,
    body: drainBody,
    responses: { 200: workerControl },
    errors: [404, 409],
  }),
  activateWorker: route({
    method: 'POST',
    path: '/workers/:id/activate',
    tags: ['workers'],
    summary: 'End a drain or ineligibility: the worker takes VMs again',
    params: idParam,
    responses: { 200: workerControl },
    errors: [404, 409],
  }),
  setEligibility: route({
    method: 'POST',
    path: '/workers/:id/eligibility',
    tags: ['workers'],
    summary: 'Turn placements on a worker on or off, without draining it',
    params: idParam,
    body: eligibilityBody,
    responses: { 200: workerControl },
    errors: [404, 409],
  }),
  revokeWorker: route({
    method: 'POST',
    path: '/workers/:id/revoke',
    tags: ['workers'],
    summary:
      "Revoke a worker's certificates: every certificate it holds now is refused on the agent channel; it must join again",
    params: idParam,
    responses: { 200: workerRevoked },
    errors: [404],
  }),

  clusterStats: route({
    method: 'GET',
    path: '/cluster/stats',
    tags: ['cluster'],
    summary: 'Cluster statistics',
    responses: { 200: clusterStats },
  }),
  clusterDistribution: route({
    method: 'GET',
    path: '/cluster/distribution',
    tags: ['cluster'],
    summary: 'VM distribution across workers',
    responses: { 200: clusterDistribution },
  }),
  planSchedule: route({
    method: 'POST',
    path: '/schedule/plan',
    tags: ['scheduler'],
    summary: 'Dry-run a placement: the chosen worker and score, or the reasons nothing fits',
    body: planBody,
    responses: { 200: schedulePlan },
  }),

  events: route({
    method: 'GET',
    path: '/events',
    tags: ['events'],
    summary:
      'Live cluster events over WebSocket: a hello with the position, then events (see README: topics, keys, since, gap, position, close codes)',
    querystring: subscriptionQuery,
    responses: {},
    errors: [426],
    websocket: true,
  }),

  whoami: route({
    method: 'GET',
    path: '/auth/whoami',
    tags: ['tokens'],
    summary: 'Who the caller is: its key or JWT subject and its role (what a client may offer it)',
    responses: { 200: identity },
  }),
  authConfig: route({
    method: 'GET',
    path: '/auth/config',
    tags: ['tokens'],
    summary: 'How to sign in (public): whether authentication is on, and the OIDC provider when one is configured',
    responses: { 200: authConfig },
  }),
  oidcToken: route({
    method: 'POST',
    path: '/auth/oidc/token',
    tags: ['tokens'],
    summary:
      "Redeem an OIDC authorization code and its PKCE verifier (public): the provider's token, verified, for the caller to use as its bearer",
    body: oidcTokenBody,
    responses: { 200: oidcToken },
    errors: [404],
  }),
  createToken: route({
    method: 'POST',
    path: '/tokens',
    tags: ['tokens'],
    summary: 'Create an API key (admin); the key is shown in this answer only',
    body: createTokenBody,
    responses: { 201: apiKeyCreated },
    errors: [409],
  }),
  listTokens: route({
    method: 'GET',
    path: '/tokens',
    tags: ['tokens'],
    summary: 'List API keys (never their secrets)',
    querystring: listTokensQuery,
    responses: { 200: apiKeyList },
  }),
  revokeToken: route({
    method: 'DELETE',
    path: '/tokens/:id',
    tags: ['tokens'],
    summary: 'Revoke an API key, by id or name',
    params: idParam,
    responses: { 200: apiKey },
    errors: [404],
  }),
  createJoinToken: route({
    method: 'POST',
    path: '/tokens/join',
    tags: ['tokens'],
    summary:
      'Create a join token (admin) with which new workers get their certificates; the token is shown in this answer only',
    body: createJoinTokenBody,
    responses: { 201: joinTokenCreated },
    errors: [409],
  }),
  listJoinTokens: route({
    method: 'GET',
    path: '/tokens/join',
    tags: ['tokens'],
    summary: 'List join tokens with their uses and state (never their secrets)',
    responses: { 200: joinTokenList },
  }),
  revokeJoinToken: route({
    method: 'DELETE',
    path: '/tokens/join/:id',
    tags: ['tokens'],
    summary: 'Revoke a join token: no worker can join with it any more',
    params: idParam,
    responses: { 200: joinToken },
    errors: [404],
  }),
  bootstrap: route({
    method: 'POST',
    path: '/tokens/bootstrap',
    tags: ['tokens'],
    summary: "Create a new cluster's first admin key; refused once any key exists",
    responses: { 201: apiKeyCreated },
    errors: [409],
  }),

  audit: route({
    method: 'GET',
    path: '/audit',
    tags: ['audit'],
    summary: 'The audit log: who did what, from where, with what outcome',
    querystring: auditQuery,
    responses: { 200: auditList },
  }),
} as const;

export type RouteName = keyof typeof ROUTES;

type Spec<N extends RouteName> = (typeof ROUTES)[N];
type ErrorStatus = (typeof COMMON_ERROR_STATUSES)[number] | 404 | 409 | 426 | 502;

/** What Fastify's type provider reads: the inputs of the route and its answers by status. */
export type FastifySchemaOf<N extends RouteName> = Pick<
  Spec<N>,
  Extract<keyof Spec<N>, 'params' | 'querystring' | 'body' | 'headers'>
> & {
  operationId: string;
  tags: string[];
  summary: string;
  response: Spec<N>['responses'] & Omit<Record<ErrorStatus, typeof errorBody>, keyof Spec<N>['responses']>;
};

/** The Fastify `schema` of a route: its inputs, every answer, and the error body for each error status. */
export function fastifySchema<N extends RouteName>(name: N): FastifySchemaOf<N> {
  const spec: RouteSpec = ROUTES[name];
  const errors = Object.fromEntries(
    [...COMMON_ERROR_STATUSES, ...(spec.errors ?? [])].map((status) => [status, errorBody] as const),
  );
  return {
    operationId: name,
    tags: [...spec.tags],
    summary: spec.summary,
    ...(spec.params ? { params: spec.params } : {}),
    ...(spec.querystring ? { querystring: spec.querystring } : {}),
    ...(spec.body ? { body: spec.body } : {}),
    ...(spec.headers ? { headers: spec.headers } : {}),
    response: { ...errors, ...spec.responses },
  } as FastifySchemaOf<N>;
}
