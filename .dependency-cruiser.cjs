/**
 * Import-graph rules for src/ (run by `npm run lint` and by test/architecture.test.ts).
 *
 * The layers, inner to outer: domain ← ports ← adapters, and the pure scheduler beside ports;
 * server, worker, runtime and cli wire them. Every rule counts type-only imports too
 * (`tsPreCompilationDeps`), because a type import still ties one layer to another.
 *
 * @type {import('dependency-cruiser').IConfiguration}
 */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'A module in src reaches itself again through its imports. Cycles make load order fragile (an ' +
        'import can be undefined while its module is still evaluating) and hide which layer depends on ' +
        'which: break the cycle by moving the shared piece to the lower layer.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'domain-is-self-contained',
      severity: 'error',
      comment:
        'src/domain holds the types, errors and pure rules every layer shares; it must not import any ' +
        'other part of src, or every layer would depend on that part too.',
      from: { path: '^src/domain/' },
      to: { path: '^src/', pathNot: '^src/domain/' },
    },
    {
      name: 'scheduler-only-domain',
      severity: 'error',
      comment:
        'src/scheduler is pure decision logic over a snapshot: from src it may import only itself and ' +
        'src/domain. Storage, queues, drivers and the server are the callers, not the callees.',
      from: { path: '^src/scheduler/' },
      to: { path: '^src/', pathNot: '^src/(scheduler|domain)/' },
    },
    {
      name: 'ports-only-domain',
      severity: 'error',
      comment:
        'src/ports are the contracts adapters implement: from src they may import only each other and ' +
        'src/domain, never an implementation or the code that wires them.',
      from: { path: '^src/ports/' },
      to: { path: '^src/', pathNot: '^src/(ports|domain)/' },
    },
    {
      name: 'adapters-not-wiring',
      severity: 'error',
      comment:
        'src/adapters implement ports; they must not reach up into the code that wires them ' +
        '(src/server, src/worker, src/runtime, src/cli). Move what they need into src/ports or src/domain.',
      from: { path: '^src/adapters/' },
      to: { path: '^src/(server|worker|runtime|cli)/' },
    },
    {
      name: 'roles-use-ports-not-adapters',
      severity: 'error',
      comment:
        'src/server and src/worker work through the ports; which adapter backs a port is chosen by the ' +
        'wiring in src/runtime, so these roles must not import src/adapters directly.',
      from: { path: '^src/(server|worker)/' },
      to: { path: '^src/adapters/' },
    },
    {
      name: 'contract-only-domain',
      severity: 'error',
      comment:
        'src/contract is the API contract the server and the SDK share: from src it may import only itself ' +
        'and src/domain, so that the SDK can load it without any server code.',
      from: { path: '^src/contract/' },
      to: { path: '^src/', pathNot: '^src/(contract|domain)/' },
    },
    {
      name: 'sdk-only-contract-and-domain',
      severity: 'error',
      comment:
        'src/sdk is shipped to users as aetherium/sdk and loaded by the CLI on every call: from src it may ' +
        'import only itself, src/contract and src/domain (never the server, the worker or the engines).',
      from: { path: '^src/sdk/' },
      to: { path: '^src/', pathNot: '^src/(sdk|contract|domain)/' },
    },
    {
      name: 'sdk-small-packages',
      severity: 'error',
      comment:
        'The SDK keeps its import cost small: of npm packages it uses only zod (the contract), ws (WebSockets, ' +
        'loaded on first use) and yaml (the CLI configuration file).',
      from: { path: '^src/(sdk|contract|domain)/' },
      to: {
        dependencyTypes: ['npm', 'npm-dev', 'npm-optional', 'npm-peer', 'npm-no-pkg', 'npm-unknown'],
        pathNot: 'node_modules/(zod|ws|yaml|@types/ws|@types/node)/',
      },
    },
    {
      name: 'src-not-tests-or-bench',
      severity: 'error',
      comment:
        'Production code must not import from test/ or bench/: those are not shipped, and their helpers ' +
        'would leak test-only behaviour into src.',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsConfig: { fileName: 'tsconfig.json' },
    // Keep `import type` and type-only re-exports in the graph: they count for every rule above.
    tsPreCompilationDeps: true,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
