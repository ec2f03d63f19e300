/**
 * Worker transitions and their events: membership (announced once per change, however many
 * replicas see it), eligibility, drain and resources. The counterpart of `Ledger` for workers.
 */
import { evt, type Worker } from '../../domain/index.ts';
import type { EventBus } from '../../ports/event-bus.ts';
import type { Store } from '../../ports/store.ts';

type Announced = Pick<Worker, 'id' | 'zone' | 'capabilities'> &
  Partial<Pick<Worker, 'hostname' | 'status' | 'eligible'>>;

export class WorkerLedger {
  constructor(
    readonly store: Store,
    readonly events: EventBus,
  ) {}

  /** True when this call announced the join (exactly one replica does). */
  async joined(worker: Announced, registry: string): Promise<boolean> {
    if (!(await this.store.announceWorker(worker.id, 'joined'))) return false;
    await this.events.publish(evt.workerJoined(worker, registry));
    return true;
  }

  async left(workerId: string, reason: string, lastSeen: Date | null): Promise<boolean> {
    if (!(await this.store.announceWorker(workerId, 'left'))) return false;
    await this.events.publish(evt.workerLeft(workerId, reason, lastSeen));
    return true;
  }

  async restarted(worker: Announced): Promise<void> {
    await this.events.publish(evt.workerUpdated(worker, 'restarted'));
  }

  async eligibility(id: string, eligible: boolean): Promise<Worker | null> {
    const worker = await this.store.setWorkerEligibility(id, eligible);
    if (worker) await this.events.publish(evt.workerUpdated(worker, 'eligibility'));
    return worker;
  }

  async drainStarted(
    id: string,
    drain: { deadline: Date | null; force: boolean; message: string | null },
    now: Date,
  ): Promise<Worker | null> {
    const worker = await this.store.startDrain(id, { deadline: drain.deadline, message: drain.message }, now);
    if (worker) await this.events.publish(evt.workerDraining(id, drain));
    return worker;
  }

  /** True for exactly one caller, once no live VM is left on the draining worker. */
  async drained(worker: Worker, now: Date): Promise<boolean> {
    if (!worker.drain || !(await this.store.markDrained(worker.id, now))) return false;
    await this.events.publish(evt.workerDrained(worker.id, worker.drain.started_at, now));
    return true;
  }

  async activated(id: string): Promise<Worker | null> {
    const worker = await this.store.activateWorker(id);
    if (worker) await this.events.publish(evt.workerActivated(id));
    return worker;
  }

  async resources(worker: Worker): Promise<void> {
    await this.events.publish(evt.workerResources(worker));
  }
}
