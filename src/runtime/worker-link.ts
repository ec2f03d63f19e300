/**
 * The WorkerLink a worker process uses until the agent channel exists: the control plane's own
 * link code over the cluster's engines, in the worker's process. The worker agent sees only the
 * link; the engines stay behind it.
 */
import type { Logger } from '../ports/logger.ts';
import { Ledger } from '../server/ledger/ledger.ts';
import { WorkerLedger } from '../server/ledger/worker-ledger.ts';
import { DirectWorkerLink } from '../server/worker-link/direct-worker-link.ts';
import type { Engines } from './engines.ts';

export function linkOverEngines(engines: Engines, log: Logger): DirectWorkerLink {
  const ledger = new Ledger(engines.store, engines.events);
  const workers = new WorkerLedger(engines.store, engines.events);
  return new DirectWorkerLink({ ledger, workers, queue: engines.queue, registry: engines.registry, log });
}
