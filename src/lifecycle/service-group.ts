/**
 * Services started in order and stopped in reverse order: what started last depends on what started
 * first (the HTTP server on the loops, the loops on the engines), so it goes first on the way down.
 * A member that fails to start stops the ones already started; a member that fails to stop does not
 * keep the others running.
 */
import { type Lifecycle, Service } from './service.ts';

export class ServiceGroup extends Service {
  private readonly started: Lifecycle[] = [];

  constructor(
    name: string,
    private readonly members: readonly Lifecycle[],
    private readonly onStopError: (member: string, err: unknown) => void = () => undefined,
  ) {
    super(name);
  }

  protected async onStart(): Promise<void> {
    for (const member of this.members) {
      await member.start();
      this.started.push(member);
    }
  }

  protected async onStop(): Promise<void> {
    for (const member of this.started.splice(0).reverse()) {
      try {
        await member.stop();
      } catch (err) {
        this.onStopError(member.name, err);
      }
    }
  }
}
