/**
 * Node restriction for the agent channel, as Kubernetes' NodeRestriction does for kubelets: the
 * worker id is the one in the certificate, and a worker may act only on itself, the tasks queued
 * for it and the VMs it holds. Anything else is `forbidden`, and written to the audit log with the
 * certificate's identity, so that a compromised host probing the cluster leaves a trail.
 */
import { AetheriumError } from '../../domain/index.ts';
import type { AgentMethod } from '../../ports/agent-protocol.ts';
import type { Logger } from '../../ports/logger.ts';
import type { Store } from '../../ports/store.ts';

export interface PeerIdentity {
  workerId: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /** Where the connection comes from, for the audit log. */
  source: string | null;
}

export class NodeGuard {
  constructor(
    private readonly peer: PeerIdentity,
    private readonly store: Store,
    private readonly log: Logger,
  ) {}

  /** The worker named in a call must be the certificate's. */
  self(named: string): void {
    if (named !== this.peer.workerId) throw this.refusal(`acts as worker ${named}`);
  }

  /** An exec channel belongs to the worker running its task. */
  async channel(channel: string): Promise<void> {
    const taskId = channel.split(':')[1] ?? '';
    const task = await this.store.getTask(taskId);
    if (!task || task.worker_id !== this.peer.workerId)
      throw this.refusal(`subscribed to ${channel}, which is not for a task of worker ${this.peer.workerId}`);
  }

  private refusal(what: string): AetheriumError {
    return new AetheriumError('forbidden', `worker ${this.peer.workerId} ${what}: refused`);
  }

  /**
   * Writes a refused call to the audit log: the node guard's refusals and the link's own (a task
   * queued for another worker, another worker's VM) alike.
   */
  async denied(method: string, target: string | null, err: AetheriumError): Promise<void> {
    this.log.warn({ worker_id: this.peer.workerId, method, target, reason: err.message }, 'agent call refused');
    await this.store
      .insertAudit({
        actor: `worker:${this.peer.workerId}`,
        actor_kind: 'certificate',
        role: null,
        action: `agent.${method}`,
        route: `agent ${method}`,
        target,
        source: this.peer.source,
        outcome: 'denied',
        status: 403,
        details: { serial: this.peer.serial, reason: err.message.slice(0, 500) },
      })
      .catch((auditErr: unknown) => this.log.error({ err: auditErr }, 'audit write failed'));
  }
}

/** What a refused call was about, for the audit log. */
export function targetOf(method: AgentMethod, args: unknown[]): string | null {
  const [first, second] = args as [unknown, unknown];
  const text = (value: unknown) => (typeof value === 'string' ? value.slice(0, 100) : null);
  switch (method) {
    case 'claimTask':
    case 'reportOutcome':
      return text(second) && `task:${text(second)}`;
    case 'reportVm':
      return text(second) && `vm:${text(second)}`;
    case 'recordExecution':
      return text((second as { vm_id?: unknown } | null)?.vm_id) && `vm:${text((second as { vm_id: unknown }).vm_id)}`;
    case 'register':
      return text((first as { id?: unknown } | null)?.id) && `worker:${text((first as { id: unknown }).id)}`;
    case 'recordMetrics':
      return (
        text((first as { worker_id?: unknown } | null)?.worker_id) &&
        `worker:${text((first as { worker_id: unknown }).worker_id)}`
      );
    case 'subscribeChannel':
    case 'unsubscribeChannel':
      return text(first) && `channel:${text(first)}`;
    default:
      return text(first) && `worker:${text(first)}`;
  }
}
