/**
 * The one lifecycle of everything that runs in the background: loops, watchers, timers, the
 * control plane and the worker agent.
 *
 *   stopped ──start()──► starting ──► running ──stop()──► stopping ──► stopped
 *                            │                                ▲
 *                            └──── start failed ──────────────┘ (what did start is stopped again)
 *
 * `start()` is guarded: calling it while starting or running returns the same promise and starts
 * nothing twice. `stop()` is safe to call any number of times, from any state: it waits for a start
 * in progress, then for the work in flight, and every caller gets the same promise.
 */
export type LifecycleState = 'starting' | 'running' | 'stopping' | 'stopped';

export interface Lifecycle {
  readonly name: string;
  readonly state: LifecycleState;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export abstract class Service implements Lifecycle {
  private current: LifecycleState = 'stopped';
  private starting: Promise<void> | null = null;
  private stopping: Promise<void> | null = null;

  constructor(readonly name: string) {}

  get state(): LifecycleState {
    return this.current;
  }

  /** True from the moment stop() is called: passes in flight use it to end early. */
  protected get shuttingDown(): boolean {
    return this.current === 'stopping' || this.current === 'stopped';
  }

  start(): Promise<void> {
    if (this.current === 'starting' || this.current === 'running') return this.starting ?? Promise.resolve();
    if (this.current === 'stopping') return Promise.reject(new Error(`${this.name} cannot start while it is stopping`));
    this.current = 'starting';
    this.stopping = null;
    this.starting = this.runStart();
    return this.starting;
  }

  private async runStart(): Promise<void> {
    try {
      await this.onStart();
      if (this.current === 'starting') this.current = 'running';
    } catch (err) {
      // Undo whatever part of the start happened, so a failed start leaks no timer or socket.
      this.current = 'stopping';
      await Promise.resolve(this.onStop()).catch(() => undefined); // the start error is the one to report
      this.current = 'stopped';
      this.starting = null;
      throw err;
    }
  }

  stop(): Promise<void> {
    if (this.current === 'stopped' && !this.starting) return this.stopping ?? Promise.resolve();
    this.stopping ??= this.runStop();
    return this.stopping;
  }

  private async runStop(): Promise<void> {
    // A start in progress finishes first: stopping half a start would leave its other half running.
    await this.starting?.catch(() => undefined); // a failed start has already cleaned up after itself
    if (this.current === 'stopped') return;
    this.current = 'stopping';
    try {
      await this.onStop();
    } finally {
      this.current = 'stopped';
      this.starting = null;
    }
  }

  protected abstract onStart(): Promise<void> | void;
  protected abstract onStop(): Promise<void> | void;
}

/** A lifecycle from two functions, for things that are not classes of ours (an HTTP listener). */
export function lifecycle(
  name: string,
  start: () => Promise<void> | void,
  stop: () => Promise<void> | void,
): Lifecycle {
  return new (class extends Service {
    protected onStart() {
      return start();
    }
    protected onStop() {
      return stop();
    }
  })(name);
}
