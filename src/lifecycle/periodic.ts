/**
 * A pass that runs every `intervalMs`, and on demand (`trigger()`): the scheduler loop, the reaper,
 * the drain loop, the agent's heartbeat. Passes never overlap; a trigger during a pass folds into one
 * more pass right after it. `stop()` clears the timer and waits for the pass in flight.
 */
import { Service } from './service.ts';

export interface PeriodicOptions {
  intervalMs: number;
  /** Run a pass as soon as it starts (default), or only after the first interval. */
  runOnStart?: boolean;
  /** A pass that throws is reported here; the next interval runs again. */
  onError: (err: unknown) => void;
}

export class Periodic extends Service {
  private timer: NodeJS.Timeout | null = null;
  private inFlight: Promise<void> | null = null;
  private again = false;

  constructor(
    name: string,
    private readonly runPass: () => Promise<void>,
    private readonly periodic: PeriodicOptions,
  ) {
    super(name);
  }

  protected onStart(): void {
    this.timer = setInterval(() => this.trigger(), this.periodic.intervalMs);
    this.timer.unref();
    if (this.periodic.runOnStart ?? true) this.trigger();
  }

  protected async onStop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.again = false;
    await this.inFlight;
  }

  /** Runs a pass soon; calls during a pass fold into one more pass after it. */
  trigger(): void {
    if (this.state !== 'running' && this.state !== 'starting') return;
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = this.runPass()
      .catch((err: unknown) => this.periodic.onError(err))
      .finally(() => {
        this.inFlight = null;
        if (this.again) {
          this.again = false;
          this.trigger();
        }
      });
  }

  /** Waits for the pass in flight, if any (tests and shutdown use it). */
  async settled(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }
}
