/**
 * A client of `GET /api/v1/events` that lasts through faults: when its connection drops it
 * reconnects, to the next replica, with `since=<last id it received>`, as the protocol says a
 * client resumes. It keeps everything exactly as the server sent it (no de-duplication, unlike
 * the SDK's subscription, which drops what it saw already): the invariants judge the server.
 */
import WebSocket from 'ws';

export interface Connection {
  replica: number;
  /** The `since` this connection asked for (null: the first, from the hello's `last_id`). */
  since: number | null;
  openedAt: number;
  closedAt: number | null;
  closeCode: number | null;
  /** The first event id this connection delivered. */
  firstEventId: number | null;
  gap: { since: number; oldest: number | null } | null;
}

export class ResumingEventClient {
  /** Every event id received, in arrival order, repeats included. */
  readonly received: number[] = [];
  readonly connections: Connection[] = [];
  /** The newest event id before the first connection: every later one should arrive. */
  baseline: number | null = null;
  /** The id to resume after: the greatest received (or the baseline). */
  lastId: number | null = null;
  private ws: WebSocket | null = null;
  private stopped = false;
  private next = 0;
  private retry: NodeJS.Timeout | null = null;

  constructor(
    private readonly replicas: string[],
    private readonly key: string,
  ) {}

  /** Connects; resolves once the first hello arrived. */
  async start(): Promise<void> {
    this.connect();
    const deadline = Date.now() + 30_000;
    while (this.baseline === null) {
      if (Date.now() > deadline) throw new Error('the events stream sent no hello within 30 s');
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The replica this client is connected to now (null while it reconnects). */
  get currentReplica(): number | null {
    const last = this.connections.at(-1);
    return last && last.closedAt === null ? last.replica : null;
  }

  /** Waits until the client is connected and has caught up to `id` (or the time is up). */
  async caughtUp(id: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.currentReplica !== null && (this.lastId ?? 0) >= id) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return false;
  }

  stop(): void {
    this.stopped = true;
    if (this.retry) clearTimeout(this.retry);
    this.ws?.close(1000, 'done');
  }

  private connect(): void {
    if (this.stopped) return;
    const replica = this.next % this.replicas.length;
    this.next++;
    const since = this.lastId;
    const url = new URL(`${this.replicas[replica]!.replace(/^http/, 'ws')}/api/v1/events`);
    if (since !== null) url.searchParams.set('since', String(since));
    const conn: Connection = {
      replica,
      since,
      openedAt: Date.now(),
      closedAt: null,
      closeCode: null,
      firstEventId: null,
      gap: null,
    };
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${this.key}` } });
    this.ws = ws;
    let opened = false;
    ws.on('open', () => {
      opened = true;
      this.connections.push(conn);
    });
    ws.on('message', (raw) => {
      for (const line of String(raw).split('\n')) {
        if (line.trim() !== '') this.handle(conn, JSON.parse(line) as Record<string, unknown>);
      }
    });
    ws.on('error', () => undefined); // a close follows
    ws.on('close', (code) => {
      if (opened) {
        conn.closedAt = Date.now();
        conn.closeCode = code;
      }
      if (this.stopped) return;
      // Straight to the next replica; a short pause when that fails too, so a dead cluster is not spun on.
      this.retry = setTimeout(() => this.connect(), opened ? 50 : 250);
    });
  }

  private handle(conn: Connection, message: Record<string, unknown>): void {
    if (message.type === 'hello') {
      if (this.baseline === null && typeof message.last_id === 'number') {
        this.baseline = message.last_id;
        this.lastId = message.last_id;
      }
      return;
    }
    if (message.type === 'gap') {
      conn.gap = { since: message.since as number, oldest: (message.oldest as number | null) ?? null };
      return;
    }
    if (message.type === 'position') {
      const id = message.last_id as number;
      if (this.lastId === null || id > this.lastId) this.lastId = id;
      return;
    }
    if (typeof message.id === 'number' && typeof message.type === 'string') {
      this.received.push(message.id);
      conn.firstEventId ??= message.id;
      if (this.lastId === null || message.id > this.lastId) this.lastId = message.id;
    }
  }
}
