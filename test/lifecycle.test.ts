/**
 * The lifecycle primitive (src/lifecycle): Service and lifecycle(), Periodic and ServiceGroup.
 * Start and stop are idempotent and concurrency-safe, stop waits for a start in progress and for
 * the pass in flight, a failed start undoes itself, triggers during a pass fold into one more pass,
 * groups start in order and stop in reverse. Periodic tests run on fake intervals and count exactly.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { MemoryEventBus } from '../src/adapters/events/memory-event-bus.ts';
import { MemoryTaskQueue } from '../src/adapters/queue/memory-task-queue.ts';
import { openStore } from '../src/adapters/storage/open-store.ts';
import { Periodic } from '../src/lifecycle/periodic.ts';
import { ServiceGroup } from '../src/lifecycle/service-group.ts';
import { type Lifecycle, type LifecycleState, lifecycle, Service } from '../src/lifecycle/service.ts';
import type { Store } from '../src/ports/store.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { Ledger } from '../src/server/ledger/ledger.ts';
import { SchedulerLoop } from '../src/server/scheduler-loop.ts';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: unknown) => void;
}

function deferred(): Deferred {
  let resolve: () => void = () => undefined;
  let reject: (err: unknown) => void = () => undefined;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Whether a promise has settled yet, without awaiting it. */
function track(promise: Promise<unknown>): { settled: boolean; error: unknown } {
  const state: { settled: boolean; error: unknown } = { settled: false, error: undefined };
  promise.then(
    () => {
      state.settled = true;
    },
    (err: unknown) => {
      state.settled = true;
      state.error = err;
    },
  );
  return state;
}

/** Lets every queued promise callback run (setImmediate is never faked in this file). */
async function flush(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A Service that counts and logs its hooks; each hook can be held on a gate or made to fail. */
class Probe extends Service {
  starts = 0;
  stops = 0;
  readonly log: string[] = [];
  startGate: Promise<void> | null = null;
  stopGate: Promise<void> | null = null;
  startError: Error | null = null;
  stopError: Error | null = null;

  constructor() {
    super('probe');
  }

  protected async onStart(): Promise<void> {
    this.starts++;
    this.log.push(`onStart in ${this.state}`);
    if (this.startGate) await this.startGate;
    if (this.startError) throw this.startError;
    this.log.push('onStart done');
  }

  protected async onStop(): Promise<void> {
    this.stops++;
    this.log.push(`onStop in ${this.state}`);
    if (this.stopGate) await this.stopGate;
    if (this.stopError) throw this.stopError;
    this.log.push('onStop done');
  }
}

describe('Service', () => {
  it('goes stopped → starting → running → stopping → stopped', async () => {
    const s = new Probe();
    const seen: LifecycleState[] = [s.state];
    const startGate = deferred();
    s.startGate = startGate.promise;
    const starting = s.start();
    seen.push(s.state);
    startGate.resolve();
    await starting;
    seen.push(s.state);
    const stopGate = deferred();
    s.stopGate = stopGate.promise;
    const stopping = s.stop();
    await flush();
    seen.push(s.state);
    stopGate.resolve();
    await stopping;
    seen.push(s.state);
    expect(seen).toEqual(['stopped', 'starting', 'running', 'stopping', 'stopped']);
    expect(s.log).toEqual(['onStart in starting', 'onStart done', 'onStop in stopping', 'onStop done']);
  });

  it('starts once when start() is called twice in a row', async () => {
    const s = new Probe();
    await s.start();
    await s.start();
    expect(s.starts).toBe(1);
    expect(s.state).toBe('running');
  });

  it('starts once when start() is called twice at the same time, and both calls share one promise', async () => {
    const s = new Probe();
    const gate = deferred();
    s.startGate = gate.promise;
    const first = s.start();
    const second = s.start();
    expect(second).toBe(first);
    const firstDone = track(first);
    await flush();
    expect(firstDone.settled).toBe(false);
    gate.resolve();
    await Promise.all([first, second]);
    expect(s.starts).toBe(1);
    expect(s.state).toBe('running');
  });

  it('stops once when stop() is called twice in a row', async () => {
    const s = new Probe();
    await s.start();
    await s.stop();
    await s.stop();
    expect(s.stops).toBe(1);
    expect(s.state).toBe('stopped');
  });

  it('stops once when stop() is called twice at the same time; neither returns before onStop ends', async () => {
    const s = new Probe();
    await s.start();
    const gate = deferred();
    s.stopGate = gate.promise;
    const first = s.stop();
    const second = s.stop();
    expect(second).toBe(first);
    const firstDone = track(first);
    const secondDone = track(second);
    await flush();
    expect(firstDone.settled).toBe(false);
    expect(secondDone.settled).toBe(false);
    gate.resolve();
    await Promise.all([first, second]);
    expect(s.stops).toBe(1);
    expect(s.state).toBe('stopped');
  });

  it('stop() on a service never started returns at once and runs no onStop', async () => {
    const s = new Probe();
    await s.stop();
    expect(s.stops).toBe(0);
    expect(s.state).toBe('stopped');
  });

  it('stop() during starting waits for the start to finish, then stops', async () => {
    const s = new Probe();
    const gate = deferred();
    s.startGate = gate.promise;
    const started = s.start();
    const stopped = s.stop();
    const stopDone = track(stopped);
    await flush();
    expect(stopDone.settled).toBe(false);
    expect(s.stops).toBe(0);
    expect(s.state).toBe('starting');
    gate.resolve();
    await started;
    await stopped;
    expect(s.log).toEqual(['onStart in starting', 'onStart done', 'onStop in stopping', 'onStop done']);
    expect(s.starts).toBe(1);
    expect(s.stops).toBe(1);
    expect(s.state).toBe('stopped');
  });

  it('a failing onStart rejects start(), runs onStop to undo, and leaves the service stopped', async () => {
    const s = new Probe();
    const boom = new Error('no socket');
    s.startError = boom;
    await expect(s.start()).rejects.toBe(boom);
    expect(s.state).toBe('stopped');
    expect(s.stops).toBe(1);
    expect(s.log).toEqual(['onStart in starting', 'onStop in stopping', 'onStop done']);
    // The undo is the only stop: a later stop() has nothing left to do.
    await s.stop();
    expect(s.stops).toBe(1);
  });

  it('reports the start error, not the undo error, when both hooks fail', async () => {
    const s = new Probe();
    const boom = new Error('start failed');
    s.startError = boom;
    s.stopError = new Error('undo failed too');
    await expect(s.start()).rejects.toBe(boom);
    expect(s.state).toBe('stopped');
  });

  it('a stop() waiting on a start that fails resolves without a second onStop', async () => {
    const s = new Probe();
    const gate = deferred();
    s.startGate = gate.promise;
    s.startError = new Error('late failure');
    const started = s.start();
    const startDone = track(started);
    const stopped = s.stop();
    gate.resolve();
    await stopped;
    await flush();
    expect(startDone.error).toBe(s.startError);
    expect(s.stops).toBe(1);
    expect(s.state).toBe('stopped');
  });

  it('can start again after a failed start', async () => {
    const s = new Probe();
    s.startError = new Error('first try fails');
    await expect(s.start()).rejects.toThrow('first try fails');
    s.startError = null;
    await s.start();
    expect(s.starts).toBe(2);
    expect(s.state).toBe('running');
  });

  it('starts and stops again after a stop: the second stop runs onStop again', async () => {
    const s = new Probe();
    await s.start();
    await s.stop();
    await s.start();
    expect(s.state).toBe('running');
    await s.stop();
    expect(s.starts).toBe(2);
    expect(s.stops).toBe(2);
    expect(s.state).toBe('stopped');
  });

  it('refuses start() while stopping', async () => {
    const s = new Probe();
    await s.start();
    const gate = deferred();
    s.stopGate = gate.promise;
    const stopped = s.stop();
    await flush();
    await expect(s.start()).rejects.toThrow(/cannot start while it is stopping/);
    gate.resolve();
    await stopped;
    expect(s.starts).toBe(1);
    expect(s.state).toBe('stopped');
  });

  it('ends stopped even when onStop throws, and stop() reports the error', async () => {
    const s = new Probe();
    await s.start();
    const boom = new Error('close failed');
    s.stopError = boom;
    await expect(s.stop()).rejects.toBe(boom);
    expect(s.state).toBe('stopped');
  });
});

describe('lifecycle()', () => {
  it('wraps two functions: each runs once however often start and stop are called', async () => {
    let starts = 0;
    let stops = 0;
    const l = lifecycle(
      'listener',
      async () => {
        starts++;
      },
      () => {
        stops++;
      },
    );
    expect(l.name).toBe('listener');
    await Promise.all([l.start(), l.start()]);
    await l.start();
    expect(l.state).toBe('running');
    await Promise.all([l.stop(), l.stop()]);
    await l.stop();
    expect(starts).toBe(1);
    expect(stops).toBe(1);
    expect(l.state).toBe('stopped');
  });

  it('a start function that throws synchronously is a failed start, undone by the stop function', async () => {
    let stops = 0;
    const l = lifecycle(
      'bad',
      () => {
        throw new Error('port in use');
      },
      () => {
        stops++;
      },
    );
    await expect(l.start()).rejects.toThrow('port in use');
    expect(l.state).toBe('stopped');
    expect(stops).toBe(1);
  });
});

describe('Periodic', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** Fake intervals and timeouts; setImmediate stays real so that flush() works. */
  const fakeTimers = () => vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout'] });

  function counting(options: { intervalMs?: number; runOnStart?: boolean } = {}) {
    const counter = { passes: 0, errors: [] as unknown[] };
    const periodic = new Periodic(
      'counting',
      async () => {
        counter.passes++;
      },
      {
        intervalMs: options.intervalMs ?? 20,
        ...(options.runOnStart === undefined ? {} : { runOnStart: options.runOnStart }),
        onError: (err) => counter.errors.push(err),
      },
    );
    return { periodic, counter };
  }

  it('runs one pass per interval', async () => {
    fakeTimers();
    const { periodic, counter } = counting({ runOnStart: false });
    await periodic.start();
    expect(counter.passes).toBe(0);
    await vi.advanceTimersByTimeAsync(100);
    expect(counter.passes).toBe(5);
    await periodic.stop();
  });

  it('runs a pass as soon as it starts by default', async () => {
    fakeTimers();
    const { periodic, counter } = counting();
    await periodic.start();
    await flush();
    expect(counter.passes).toBe(1);
    await vi.advanceTimersByTimeAsync(20);
    expect(counter.passes).toBe(2);
    await periodic.stop();
  });

  it('start() twice, in a row and at once, creates one interval: as many passes as a single start', async () => {
    fakeTimers();
    const control = counting({ runOnStart: false });
    const doubled = counting({ runOnStart: false });
    await control.periodic.start();
    await Promise.all([doubled.periodic.start(), doubled.periodic.start()]);
    await doubled.periodic.start();
    expect(vi.getTimerCount()).toBe(2); // one interval each
    await vi.advanceTimersByTimeAsync(200);
    expect(control.counter.passes).toBe(10);
    expect(doubled.counter.passes).toBe(control.counter.passes);
    await Promise.all([control.periodic.stop(), doubled.periodic.stop(), doubled.periodic.stop()]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('runs no pass after stop, neither on the interval nor on trigger()', async () => {
    fakeTimers();
    const { periodic, counter } = counting({ runOnStart: false });
    await periodic.start();
    await vi.advanceTimersByTimeAsync(60);
    expect(counter.passes).toBe(3);
    await periodic.stop();
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(1000);
    periodic.trigger();
    await flush();
    expect(counter.passes).toBe(3);
    expect(periodic.state).toBe('stopped');
  });

  it('stop() waits for the pass in flight', async () => {
    fakeTimers();
    const gate = deferred();
    const log: string[] = [];
    const periodic = new Periodic(
      'slow',
      async () => {
        log.push('pass begins');
        await gate.promise;
        log.push('pass ends');
      },
      { intervalMs: 20, onError: () => undefined },
    );
    await periodic.start();
    await flush();
    expect(log).toEqual(['pass begins']);
    const stopped = periodic.stop().then(() => log.push('stop returned'));
    const stopDone = track(stopped);
    await vi.advanceTimersByTimeAsync(100);
    await flush();
    expect(stopDone.settled).toBe(false);
    expect(periodic.state).toBe('stopping');
    gate.resolve();
    await stopped;
    expect(log).toEqual(['pass begins', 'pass ends', 'stop returned']);
    expect(periodic.state).toBe('stopped');
  });

  it('folds triggers during a pass into exactly one more pass', async () => {
    fakeTimers();
    const gate = deferred();
    let passes = 0;
    const periodic = new Periodic(
      'folding',
      async () => {
        passes++;
        if (passes === 1) await gate.promise;
      },
      { intervalMs: 20, runOnStart: false, onError: () => undefined },
    );
    await periodic.start();
    periodic.trigger();
    expect(passes).toBe(1);
    periodic.trigger();
    periodic.trigger();
    periodic.trigger();
    await vi.advanceTimersByTimeAsync(19); // no tick yet
    await flush();
    expect(passes).toBe(1);
    gate.resolve();
    await periodic.settled();
    await flush();
    expect(passes).toBe(2);
    await periodic.stop();
    expect(passes).toBe(2);
  });

  it('folds interval ticks during a long pass into one more pass, and passes never overlap', async () => {
    fakeTimers();
    let running = 0;
    let maxRunning = 0;
    let passes = 0;
    const periodic = new Periodic(
      'long',
      async () => {
        passes++;
        running++;
        maxRunning = Math.max(maxRunning, running);
        await new Promise<void>((resolve) => setTimeout(resolve, 50));
        running--;
      },
      { intervalMs: 10, runOnStart: false, onError: () => undefined },
    );
    await periodic.start();
    await vi.advanceTimersByTimeAsync(10); // first tick: pass 1 runs until t=60
    expect(passes).toBe(1);
    await vi.advanceTimersByTimeAsync(49); // ticks at 20..50 fold; pass 1 still running at t=59
    expect(passes).toBe(1);
    await vi.advanceTimersByTimeAsync(1); // t=60: pass 1 ends, the folded pass starts at once
    expect(passes).toBe(2);
    expect(maxRunning).toBe(1);
    const stopped = periodic.stop(); // waits for pass 2, which ends at t=110
    await vi.advanceTimersByTimeAsync(50);
    await stopped;
    expect(running).toBe(0);
    expect(passes).toBe(2);
    expect(maxRunning).toBe(1);
  });

  it('a trigger folded into a pass in flight does not run once stop() was called', async () => {
    fakeTimers();
    const gate = deferred();
    let passes = 0;
    const periodic = new Periodic(
      'folded-then-stopped',
      async () => {
        passes++;
        await gate.promise;
      },
      { intervalMs: 1000, onError: () => undefined },
    );
    await periodic.start();
    await flush();
    expect(passes).toBe(1);
    periodic.trigger(); // folds into "one more pass"
    const stopped = periodic.stop();
    await flush();
    expect(periodic.state).toBe('stopping');
    periodic.trigger(); // while stopping: ignored, even with a pass in flight
    gate.resolve();
    await stopped;
    await vi.advanceTimersByTimeAsync(5000);
    await flush();
    expect(passes).toBe(1);
  });

  it('reports a pass that throws to onError and keeps running on the interval', async () => {
    fakeTimers();
    const boom = new Error('pass failed');
    const errors: unknown[] = [];
    let passes = 0;
    const periodic = new Periodic(
      'flaky',
      async () => {
        passes++;
        if (passes === 1) throw boom;
      },
      { intervalMs: 20, onError: (err) => errors.push(err) },
    );
    await periodic.start();
    await flush();
    expect(errors).toEqual([boom]);
    await vi.advanceTimersByTimeAsync(40);
    expect(passes).toBe(3);
    expect(errors).toEqual([boom]);
    expect(periodic.state).toBe('running');
    await periodic.stop();
  });

  it('restarts after a stop with one interval again', async () => {
    fakeTimers();
    const { periodic, counter } = counting({ runOnStart: false });
    await periodic.start();
    await vi.advanceTimersByTimeAsync(40);
    await periodic.stop();
    await periodic.start();
    expect(vi.getTimerCount()).toBe(1);
    await vi.advanceTimersByTimeAsync(40);
    expect(counter.passes).toBe(4);
    await periodic.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('ServiceGroup', () => {
  interface MemberOptions {
    failStart?: Error;
    failStop?: Error;
    startGate?: Promise<void>;
  }

  function member(name: string, log: string[], options: MemberOptions = {}): Lifecycle {
    return lifecycle(
      name,
      async () => {
        log.push(`start ${name}`);
        if (options.startGate) await options.startGate;
        if (options.failStart) throw options.failStart;
      },
      () => {
        log.push(`stop ${name}`);
        if (options.failStop) throw options.failStop;
      },
    );
  }

  it('starts members in order and stops them in reverse order', async () => {
    const log: string[] = [];
    const members = ['a', 'b', 'c'].map((name) => member(name, log));
    const group = new ServiceGroup('group', members);
    await group.start();
    expect(log).toEqual(['start a', 'start b', 'start c']);
    expect(members.map((m) => m.state)).toEqual(['running', 'running', 'running']);
    await group.stop();
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(members.map((m) => m.state)).toEqual(['stopped', 'stopped', 'stopped']);
  });

  it('starts and stops each member once however often the group is started and stopped', async () => {
    const log: string[] = [];
    const group = new ServiceGroup('group', [member('a', log), member('b', log)]);
    await Promise.all([group.start(), group.start()]);
    await group.start();
    await Promise.all([group.stop(), group.stop()]);
    await group.stop();
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
  });

  it('stops the members already started when a later one fails to start', async () => {
    const log: string[] = [];
    const boom = new Error('b cannot start');
    const [a, b, c] = [member('a', log), member('b', log, { failStart: boom }), member('c', log)];
    const group = new ServiceGroup('group', [a, b, c]);
    await expect(group.start()).rejects.toBe(boom);
    // b undoes its own failed start (a Service does), then the group stops a; c never starts.
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
    expect([group.state, a.state, b.state, c.state]).toEqual(['stopped', 'stopped', 'stopped', 'stopped']);
    // Nothing is left to stop.
    await group.stop();
    expect(log).toHaveLength(4);
  });

  it('keeps stopping the others when one member fails to stop, and reports it', async () => {
    const log: string[] = [];
    const boom = new Error('b will not close');
    const reported: [string, unknown][] = [];
    const members = [member('a', log), member('b', log, { failStop: boom }), member('c', log)];
    const group = new ServiceGroup('group', members, (name, err) => reported.push([name, err]));
    await group.start();
    await expect(group.stop()).resolves.toBeUndefined();
    expect(log).toEqual(['start a', 'start b', 'start c', 'stop c', 'stop b', 'stop a']);
    expect(reported).toEqual([['b', boom]]);
    expect(members.map((m) => m.state)).toEqual(['stopped', 'stopped', 'stopped']);
    expect(group.state).toBe('stopped');
  });

  it('a stop() during the group start waits for it, then stops every member in reverse', async () => {
    const log: string[] = [];
    const gate = deferred();
    const group = new ServiceGroup('group', [member('a', log, { startGate: gate.promise }), member('b', log)]);
    const started = group.start();
    const stopped = group.stop();
    const stopDone = track(stopped);
    await flush();
    expect(log).toEqual(['start a']);
    expect(stopDone.settled).toBe(false);
    gate.resolve();
    await started;
    await stopped;
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a']);
    expect(group.state).toBe('stopped');
  });

  it('starts its members again after a stop', async () => {
    const log: string[] = [];
    const group = new ServiceGroup('group', [member('a', log), member('b', log)]);
    await group.start();
    await group.stop();
    await group.start();
    await group.stop();
    expect(log).toEqual(['start a', 'start b', 'stop b', 'stop a', 'start a', 'start b', 'stop b', 'stop a']);
  });
});

describe('SchedulerLoop', () => {
  let store: Store;

  beforeAll(async () => {
    store = await openStore({ kind: 'pglite' });
  }, 120_000);

  afterAll(async () => {
    vi.useRealTimers();
    await store?.close();
  });

  function loop(): SchedulerLoop {
    const options = { intervalMs: 20, batchSize: 10, strategy: 'binpack' as const, maxCreatesInFlight: 4 };
    return new SchedulerLoop(
      new Ledger(store, new MemoryEventBus(100)),
      new MemoryTaskQueue(),
      { ...options, redeliverAfterMs: 60_000 },
      silentLogger,
    );
  }

  it('runs a real pass on an empty store', async () => {
    await expect(loop().pass()).resolves.toBeUndefined();
  });

  it('is a Periodic whose double start leaks no interval', async () => {
    const control = loop();
    const doubled = loop();
    expect(doubled).toBeInstanceOf(Periodic);
    // The passes are counted, not run: the Periodic under the loop is what is tested here.
    const controlPasses = vi.spyOn(control, 'pass').mockResolvedValue(undefined);
    const doubledPasses = vi.spyOn(doubled, 'pass').mockResolvedValue(undefined);
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      await control.start();
      await Promise.all([doubled.start(), doubled.start()]);
      await doubled.start();
      expect(vi.getTimerCount()).toBe(2);
      await vi.advanceTimersByTimeAsync(100);
      // One pass at start, then one per 20 ms.
      expect(controlPasses).toHaveBeenCalledTimes(6);
      expect(doubledPasses).toHaveBeenCalledTimes(6);
      await Promise.all([control.stop(), doubled.stop(), doubled.stop()]);
      expect(vi.getTimerCount()).toBe(0);
      await vi.advanceTimersByTimeAsync(100);
      expect(doubledPasses).toHaveBeenCalledTimes(6);
    } finally {
      vi.useRealTimers();
    }
  });
});
