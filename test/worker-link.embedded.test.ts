/**
 * The WorkerLink conformance suite against DirectWorkerLink on the embedded engines: PGlite in
 * memory, the in-memory queue and event bus, the built-in registry. Each test opens fresh engines.
 */
import { loadConfig } from '../src/config/load.ts';
import { openEngines } from '../src/runtime/engines.ts';
import { silentLogger } from '../src/runtime/logger.ts';
import { linkOverEngines } from '../src/runtime/worker-link.ts';
import { workerLinkConformance } from './conformance/worker-link.suite.ts';

const config = loadConfig({
  env: {},
  overrides: {
    store: { kind: 'pglite', pglite: { data_dir: 'memory://' } },
    queue: { kind: 'memory' },
    events: { kind: 'memory' },
    discovery: { provider: 'builtin' },
    log: { level: 'silent' },
  },
});

workerLinkConformance('direct, embedded (PGlite, memory queue and bus)', async () => {
  const engines = await openEngines(config);
  return {
    link: linkOverEngines(engines, silentLogger),
    store: engines.store,
    events: engines.events,
    close: () => engines.close(),
  };
});
