/**
 * The WorkerLink conformance suite against the agent channel: RemoteWorkerLink over real mutual
 * TLS to an agent port, served by the control plane's DirectWorkerLink on embedded engines. A
 * certificate names one worker, and the suite makes many, so the link under test holds one
 * channel per worker id (each with its own certificate) and routes every call by the worker it
 * names: exactly how a fleet of workers looks from the control plane.
 */
import type { RemoteWorkerLink } from '../src/adapters/agent/remote-worker-link.ts';
import type {
  DrainRequest,
  Execution,
  WorkerMetricSample,
  WorkerRegistration,
  WorkerResources,
} from '../src/domain/index.ts';
import type { ConsumeOptions, QueueConsumer, TaskProcessor } from '../src/ports/task-queue.ts';
import type { TaskOutcome, VmReport, WorkerLink } from '../src/ports/worker-link.ts';
import { workerLinkConformance } from './conformance/worker-link.suite.ts';
import { startAgentPort } from './harness/agent-port.ts';

/** One RemoteWorkerLink (one certificate, one channel) per worker id. */
class FleetLink implements WorkerLink {
  readonly kind = 'agent';
  private readonly links = new Map<string, Promise<RemoteWorkerLink>>();
  constructor(private readonly open: (workerId: string) => Promise<RemoteWorkerLink>) {}

  private of(workerId: string): Promise<RemoteWorkerLink> {
    let link = this.links.get(workerId);
    if (!link) {
      link = this.open(workerId);
      this.links.set(workerId, link);
    }
    return link;
  }

  async register(registration: WorkerRegistration, options?: { resume?: boolean }) {
    return (await this.of(registration.id)).register(registration, options);
  }
  async heartbeat(id: string) {
    return (await this.of(id)).heartbeat(id);
  }
  async deregister(id: string) {
    return (await this.of(id)).deregister(id);
  }
  async reportResources(id: string, resources: WorkerResources) {
    return (await this.of(id)).reportResources(id, resources);
  }
  async recordMetrics(sample: WorkerMetricSample) {
    return (await this.of(sample.worker_id)).recordMetrics(sample);
  }
  consume(id: string, processor: TaskProcessor, options: ConsumeOptions): QueueConsumer {
    const consumer = this.of(id).then((link) => link.consume(id, processor, options));
    return {
      pause: async () => (await consumer).pause(),
      resume: () => void consumer.then((c) => c.resume()),
      close: async () => (await consumer).close(),
    };
  }
  async assignments(id: string) {
    return (await this.of(id)).assignments(id);
  }
  async claimTask(id: string, taskId: string, resume: boolean) {
    return (await this.of(id)).claimTask(id, taskId, resume);
  }
  async reportOutcome(id: string, taskId: string, outcome: TaskOutcome) {
    return (await this.of(id)).reportOutcome(id, taskId, outcome);
  }
  async reportVm(id: string, vmId: string, report: VmReport) {
    return (await this.of(id)).reportVm(id, vmId, report);
  }
  async recordExecution(id: string, execution: Execution) {
    return (await this.of(id)).recordExecution(id, execution);
  }
  async requestDrain(id: string, request: DrainRequest) {
    return (await this.of(id)).requestDrain(id, request);
  }
  async drainProgress(id: string) {
    return (await this.of(id)).drainProgress(id);
  }
  onCancel(id: string, listener: (taskId: string, reason: string) => void): () => void {
    let stop: (() => void) | null = null;
    let stopped = false;
    void this.of(id).then((link) => {
      if (!stopped) stop = link.onCancel(id, listener);
    });
    return () => {
      stopped = true;
      stop?.();
    };
  }
}

workerLinkConformance('agent channel (mutual TLS, embedded engines behind it)', async () => {
  const port = await startAgentPort();
  const link = new FleetLink(async (workerId) => (await port.connect(workerId)).link);
  return { link, store: port.engines.store, events: port.engines.events, close: () => port.stop() };
});
