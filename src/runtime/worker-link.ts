/**
 * The control plane's own WorkerLink over a set of engines, outside a ControlPlane: what each
 * replica serves the agent channel with, for the in-process cluster harness and the link's
 * conformance suite. A worker process never uses it: it has no engines (worker-process.ts).
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
