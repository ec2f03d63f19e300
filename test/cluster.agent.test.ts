/**
 * Node security in a real cluster: server replicas and workers as separate processes, each worker
 * in a network namespace of its own that reaches the replicas' agent ports and nothing else. The
 * workers joined with a token; their certificates live 30 s, so each renews during the run.
 */
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisEventBus } from '../src/adapters/events/redis-event-bus.ts';
import type { ClusterEvent } from '../src/domain/index.ts';
import { apiCall, type Cluster, startCluster } from './harness/cluster.ts';
import { CLI } from './harness/processes.ts';

let cluster: Cluster;
let bus: RedisEventBus;
const seen: ClusterEvent[] = [];
const firstCerts = new Map<string, X509Certificate>();

const WORKERS = [
  { id: 'w1', zone: 'zone-a' },
  { id: 'w2', zone: 'zone-b' },
];

function api<T = any>(method: string, path: string, body?: unknown, base = cluster.servers[0]!.url) {
  return apiCall<T>(base, cluster.adminKey, method, path, body);
}

async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    if (await Promise.resolve(check()).catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  const logs = [...cluster.servers, ...cluster.workers.values()].map(
    (p) => `--- ${p.name}\n${p.output().slice(-3000)}`,
  );
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${logs.join('\n')}`);
}

const certOf = (id: string) =>
  new X509Certificate(readFileSync(join(cluster.workers.get(id)!.stateDir, 'identity', 'worker.pem')));

/** Whether a TCP connection from a worker's namespace to `host:port` opens within a second. */
function reachableFrom(workerIndex: number, host: string, port: number): Promise<boolean> {
  const script = `const s=require('net').connect(${port},'${host}');s.setTimeout(1000);s.on('connect',()=>process.exit(0));s.on('timeout',()=>process.exit(3));s.on('error',()=>process.exit(2));`;
  const child = cluster.network.hosts[workerIndex]!.spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code === 0)));
}

/** Which replica holds a worker's channel now: the last one that logged its connection. */
function holderOf(workerId: string): number {
  let holder = -1;
  let at = -1;
  cluster.servers.forEach((server, index) => {
    for (const line of server.output().split('\n')) {
      if (!line.includes('"worker connected"') || !line.includes(`"worker_id":"${workerId}"`)) continue;
      const time = (JSON.parse(line) as { time: number }).time;
      if (time > at) [holder, at] = [index, time];
    }
  });
  return holder;
}

beforeAll(async () => {
  cluster = await startCluster({
    servers: 2,
    workers: WORKERS,
    certTtl: '30s',
    ttl: '6s',
    env: { AETHERIUM_LOG__LEVEL: 'info' },
    workerEnv: { AETHERIUM_LOG__LEVEL: 'info' },
  });
  bus = new RedisEventBus({ url: cluster.redis.url });
  await bus.ready();
  bus.subscribe((event) => seen.push(event));
  for (const { id } of WORKERS) firstCerts.set(id, certOf(id));
}, 180_000);

afterAll(async () => {
  await bus?.close();
  await cluster?.stop();
}, 120_000);

describe('a worker knows the agent ports and its certificate, nothing else', () => {
  it('from its namespace it reaches the agent ports, and no engine and no API port', async () => {
    const gateway = cluster.network.gateway;
    for (const server of cluster.servers) {
      const [host, port] = server.agent.split(':') as [string, string];
      expect(await reachableFrom(0, host, Number(port)), server.agent).toBe(true);
    }
    const engines = [
      Number(new URL(cluster.postgres.url).port),
      cluster.redis.port,
      cluster.etcd.port,
      ...cluster.servers.map((s) => Number(new URL(s.url).port)),
    ];
    for (const port of engines) {
      expect(await reachableFrom(0, gateway, port), `gateway:${port}`).toBe(false);
      expect(await reachableFrom(0, '127.0.0.1', port), `127.0.0.1:${port}`).toBe(false);
    }
  });

  it('its environment and files hold no database, Redis or etcd address and no cluster credential', () => {
    for (const { id } of WORKERS) {
      const worker = cluster.workers.get(id)!;
      const environ = readFileSync(`/proc/${worker.child!.pid}/environ`, 'utf8').split('\0');
      const everything = [...Object.entries(worker.env).map(([k, v]) => `${k}=${v}`), ...environ].join('\n');
      expect(everything).not.toMatch(/postgres(ql)?:\/\/|redis:\/\/|rediss:\/\/|DATABASE_URL|REDIS_URL|ETCD|CONSUL/i);
      expect(everything).not.toContain(cluster.adminKey);
      for (const port of [new URL(cluster.postgres.url).port, String(cluster.redis.port), String(cluster.etcd.port)])
        expect(everything).not.toContain(`:${port}`);
      expect(everything).toContain('AETHERIUM_WORKER__SERVERS');
      // Its identity is its own key and certificate, for its id only.
      expect(certOf(id).subjectAltName).toBe(`URI:spiffe://aetherium/worker/${id}`);
    }
  });
});

describe('the work travels on the agent channel', () => {
  it('exec streams its output through a replica while the command runs', async () => {
    const created = await api('POST', '/vms?wait=true&timeout=60', {
      name: 'stream-1',
      driver: 'sandbox',
      zone: 'zone-a',
    });
    expect(created.body.vm?.status, JSON.stringify(created.body)).toBe('running');
    const base = cluster.servers[1]!.url.replace('http', 'ws');
    const ws = new WebSocket(`${base}/api/v1/vms/${created.body.vm.id}/exec/stream`, {
      headers: { authorization: `Bearer ${cluster.adminKey}` },
    });
    const messages: { type: string; data?: string; exit_code?: number; at: number }[] = [];
    ws.on('message', (raw) => messages.push({ ...JSON.parse(String(raw)), at: Date.now() }));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.send(
      JSON.stringify({ type: 'start', command: 'sh', args: ['-c', 'for i in 1 2 3; do echo line$i; sleep 0.4; done'] }),
    );
    const closed = await new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)));
    expect(closed).toBe(1000);
    const out = messages.filter((m) => m.type === 'stdout');
    expect(out.map((m) => m.data).join('')).toBe('line1\nline2\nline3\n');
    // Streamed, not delivered at the end: the first line came well before the exit.
    const exit = messages.find((m) => m.type === 'exit')!;
    expect(exit.exit_code).toBe(0);
    expect(exit.at - out[0]!.at).toBeGreaterThan(400);
  });

  it("`aetherium workers logs ID -f` shows a worker's lines live, from either replica", async () => {
    const followers = cluster.servers.map((server) => {
      const child = spawn(process.execPath, [CLI, '--api', server.url, 'workers', 'logs', 'w1', '-f', '--json'], {
        env: { ...process.env, AETHERIUM_TOKEN: cluster.adminKey },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (out += d));
      return { child, output: () => out };
    });
    try {
      // The past lines come first: the worker's start is in its buffer.
      await until(
        'both followers print past lines',
        () => followers.every((f) => f.output().includes('"worker registered')),
        20_000,
      ).catch((err: Error) => {
        throw new Error(
          `${followers.map((f) => f.output().slice(-1500)).join('\n=====\n')}\n${err.message.slice(0, 3000)}`,
        );
      });
      const created = await api('POST', '/vms?wait=true&timeout=60', {
        name: 'logged-1',
        driver: 'sandbox',
        zone: 'zone-a',
      });
      expect(created.body.vm?.status).toBe('running');
      const taskId = created.body.task.id as string;
      await until(
        'both followers print the create as it finishes',
        () => followers.every((f) => f.output().includes(taskId) && f.output().includes('task finished')),
        20_000,
      );
      const line = followers[0]!
        .output()
        .split('\n')
        .find((l) => l.includes(taskId))!;
      expect(JSON.parse(line)).toMatchObject({ worker_id: 'w1', msg: 'task finished', outcome: 'completed' });
      // Nothing that looks like a secret travels with them.
      for (const f of followers) expect(f.output()).not.toContain(cluster.adminKey);
    } finally {
      for (const f of followers) f.child.kill('SIGTERM');
    }
  });
});

describe('control reaches the worker over its channel', () => {
  it('a cancel through the other replica kills a running command on the worker', async () => {
    const vm = (await api('GET', '/vms/stream-1')).body;
    const exec = api('POST', `/vms/${vm.id}/exec`, { command: 'sleep', args: ['600'] }, cluster.servers[0]!.url);
    let taskId = '';
    await until(
      'the command to be running',
      async () => {
        const tasks = (await api('GET', `/tasks?vm_id=${vm.id}&type=vm:execute&status=running`)).body.tasks;
        taskId = tasks[0]?.id ?? '';
        return taskId !== '';
      },
      15_000,
    );
    const cancelled = await api('POST', `/tasks/${taskId}/cancel`, undefined, cluster.servers[1]!.url);
    expect([200, 202]).toContain(cancelled.status);
    const answer = await exec;
    expect(answer.status).toBe(409);
    expect((answer.body as { error: { code: string } }).error.code).toBe('cancelled');
    expect((await api('GET', `/tasks/${taskId}`)).body.status).toBe('cancelled');
  }, 60_000);

  it('a forced drain empties the worker and it takes no new VM until activated', async () => {
    const placed = await api('POST', '/vms?wait=true&timeout=60', {
      name: 'drained-1',
      driver: 'sandbox',
      zone: 'zone-b',
    });
    expect(placed.body.vm?.worker_id).toBe('w2');
    const drain = await api('POST', '/workers/w2/drain', { force: true }, cluster.servers[1]!.url);
    expect(drain.status).toBe(200);
    await until('w2 to be empty', async () => (await api('GET', '/workers/w2/vms')).body.total === 0, 30_000);
    const refused = await api('POST', '/schedule/plan', { zone: 'zone-b' });
    expect(refused.body.placement).toBeNull();
    expect(refused.body.explanation.rejected['worker draining']).toBe(1);
    expect((await api('POST', '/workers/w2/activate')).status).toBe(200);
    const again = await api('POST', '/vms?wait=true&timeout=60', {
      name: 'drained-2',
      driver: 'sandbox',
      zone: 'zone-b',
    });
    expect(again.body.vm?.status).toBe('running');
  }, 90_000);
});

describe('failover and identity over time', () => {
  it('kill -9 of the replica holding a worker: it resumes on the other, no flap, nothing lost or run twice', async () => {
    const holder = holderOf('w1');
    expect(holder).toBeGreaterThanOrEqual(0);
    const survivor = cluster.servers[1 - holder]!;
    const from = seen.length;
    const creates = Array.from({ length: 6 }, (_, i) =>
      api('POST', '/vms', { name: `failover-${i}`, driver: 'sandbox', zone: 'zone-a' }, survivor.url),
    );
    await cluster.servers[holder]!.kill('SIGKILL');
    const answers = await Promise.all(creates);
    for (const a of answers) expect(a.status, JSON.stringify(a.body)).toBe(202);
    await until('w1 is on the surviving replica', () => holderOf('w1') === 1 - holder, 30_000);
    const ids = answers.map((a) => a.body.vm.id as string);
    await until(
      'every create finished',
      async () => {
        const vms = await Promise.all(ids.map((id) => api('GET', `/vms/${id}`, undefined, survivor.url)));
        return vms.every((v) => v.body.status === 'running');
      },
      60_000,
    );
    // Each VM once: one sandbox on the host, one create task.
    const vms = (await api('GET', '/vms?limit=1000', undefined, survivor.url)).body.vms as { name: string }[];
    for (let i = 0; i < 6; i++) expect(vms.filter((v) => v.name === `failover-${i}`)).toHaveLength(1);
    const events = seen.slice(from);
    expect(events.filter((e) => e.type === 'worker.left' || e.type === 'worker.joined')).toEqual([]);
    const workers = (await api('GET', '/workers', undefined, survivor.url)).body.workers as {
      id: string;
      status: string;
    }[];
    expect(workers.find((w) => w.id === 'w1')?.status).toBe('active');
    // The dead replica comes back for the tests after this one.
    cluster.servers[holder]!.start();
    await until('the replica is back', async () => (await fetch(`${cluster.servers[holder]!.url}/health`)).ok, 60_000);
  }, 150_000);

  it('each worker renewed its certificate by itself before expiry, with its VMs running throughout', async () => {
    for (const { id } of WORKERS) {
      await until(`${id} renewed`, () => certOf(id).serialNumber !== firstCerts.get(id)!.serialNumber, 40_000);
      const renewed = certOf(id);
      expect(new Date(renewed.validTo).getTime()).toBeGreaterThan(new Date(firstCerts.get(id)!.validTo).getTime());
      expect(renewed.subjectAltName).toBe(`URI:spiffe://aetherium/worker/${id}`);
    }
    // Past the first certificates' expiry, the workers are still connected and working.
    const firstExpiry = Math.max(...[...firstCerts.values()].map((c) => new Date(c.validTo).getTime()));
    await until('the first certificates expired', () => Date.now() > firstExpiry + 1000, 40_000);
    const exec = await api('POST', '/vms/stream-1/exec', { command: 'echo', args: ['still here'] });
    expect(exec.body.stdout ?? exec.body.result?.stdout, JSON.stringify(exec.body)).toBe('still here\n');
    expect(seen.filter((e) => e.type === 'worker.left')).toEqual([]);
    const workers = (await api('GET', '/workers')).body.workers as {
      id: string;
      status: string;
      is_healthy: boolean;
    }[];
    for (const { id } of WORKERS)
      expect(workers.find((w) => w.id === id)).toMatchObject({ status: 'active', is_healthy: true });
  }, 120_000);
});
