/**
 * GET /api/v1/events (WebSocket): the cluster's events as they happen, `{ id, type, timestamp,
 * data }`, ids increasing across the cluster. A text frame carries one or more events, one JSON
 * object per line (events that arrive together leave together: fewer frames, far less CPU).
 *
 * Query: `topics=worker,vm,task`, `worker_id=…`, `vm_id=…`, `since=<id>`. With `since` the client
 * first gets every retained event after that id, then the live ones, each exactly once and in
 * order; if the id is older than the retention window it gets `{ "type": "gap", … }` and must
 * resync from the REST API. A client may change its filters with
 * `{ "type": "subscribe", "topics": [...], "worker_id": …, "vm_id": … }`.
 *
 * The first message is always `{ "type": "hello", "since", "last_id" }`: `last_id` is the newest
 * event in the cluster (0: none yet); without `since` every event that follows has a greater id, so
 * `since=<last_id>` resumes without loss. `{ "type": "position", "last_id" }` follows, at most every
 * `events.position_interval`, when the client's filter skipped events: resume after that id.
 */
import type { FastifyBaseLogger } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { WebSocket } from 'ws';
import type { ClusterEvent } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import { CLOSE_CODES, type EventHub, EventSession } from '../events/event-hub.ts';
import { subscribeMessage } from '../../contract/requests.ts';
import { fastifySchema } from '../../contract/routes.ts';
import { upgradeRequired } from './upgrade-required.ts';
import { subscriptionOf } from '../events/subscription.ts';

const REPLAY_PAGE = 1000;

export function eventRoutes(hub: EventHub, bus: EventBus): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/events',
      {
        websocket: true,
        schema: fastifySchema('events'),
        preHandler: upgradeRequired,
      },
      (socket, request) => {
        const query = request.query as {
          topics?: string[];
          topic?: string[];
          worker_id?: string;
          vm_id?: string;
          since?: number;
        };
        const session = new EventSession(socket as WebSocket, subscriptionOf(query), query.since ?? null, hub);
        hub.add(session);
        socket.on('message', (raw: Buffer) => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(raw.toString());
          } catch {
            parsed = null;
          }
          const message = subscribeMessage.safeParse(parsed);
          if (!message.success) {
            hub.drop(
              session,
              CLOSE_CODES.badMessage,
              'expected {"type":"subscribe","topics":[...],"worker_id":…,"vm_id":…}',
            );
            return;
          }
          session.subscription = subscriptionOf(message.data);
          session.send(
            JSON.stringify({
              type: 'subscribed',
              topics: message.data.topics ?? [],
              worker_id: message.data.worker_id ?? null,
              vm_id: message.data.vm_id ?? null,
            }),
          );
        });
        void start(session, hub, bus, request.log).catch((err) => {
          request.log.warn({ err }, 'the event stream could not start (position or backlog unreadable)');
          hub.drop(session, 1011, 'could not read past events; reconnect');
        });
      },
    );
  };
}

/** The hello, then the backlog after `since` (when given), then the live events. */
async function start(session: EventSession, hub: EventHub, bus: EventBus, log: FastifyBaseLogger): Promise<void> {
  let latest: number;
  try {
    latest = await hub.latestId();
  } catch (err) {
    // The engine is away (Redis restarting): what this replica delivered is still a true position.
    if (hub.lastLiveId === null) throw err;
    log.warn({ err }, 'could not read the newest event id; starting after the last one delivered here');
    latest = hub.lastLiveId;
  }
  session.hello(latest);
  if (session.since === null) session.startLive([]);
  else await catchUp(session, bus, session.since);
}

/** Sends every retained event after `since`, page by page, then lets the live ones through. */
async function catchUp(session: EventSession, bus: EventBus, since: number): Promise<void> {
  const backlog: ClusterEvent[] = [];
  let after = since;
  for (;;) {
    const page = await bus.replay(after, REPLAY_PAGE);
    if ('gap' in page) {
      session.gapTold();
      session.send(
        JSON.stringify({
          type: 'gap',
          since,
          oldest: page.oldest,
          message: `events after ${since} are no longer retained (oldest kept: ${page.oldest}); resync from the REST API, then follow live events`,
        }),
      );
      session.skipTo(page.oldest === null ? since : page.oldest - 1);
      break;
    }
    backlog.push(...page.events);
    if (page.events.length < REPLAY_PAGE) break;
    after = page.events[page.events.length - 1]!.id;
  }
  session.startLive(backlog);
}
