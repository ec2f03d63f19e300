/**
 * `npm run bench:load`: the control plane under load, on real engines and real processes on
 * loopback. Scenarios (bench/load/*.ts), run in turn, each bounded in time:
 *   register    a. 100 workers registering at once
 *   vms         b. 1,000 VMs across 10 workers with the process driver, then deleted
 *   heartbeats  c. 10,000 simulated workers heartbeating every 10 s
 *   api-reads   d. API reads against a bare Fastify hello-world (bench/api-reads.ts)
 *   overhead    e. the control plane's own cost per create, and create vs raw BullMQ throughput
 * Prints the machine, one table per scenario and a summary table (scenario, metric, value,
 * target, met?). Options: `--only name[,name]`, `--json path` (the results as JSON).
 * Everything started is stopped at the end, on a failure and on Ctrl-C; temp folders go with it.
 * The CPU is shared with the load generator (and whatever else runs): ratios measured in the same
 * run say more than absolute numbers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { apiReads } from './load/api-reads.ts';
import { type Engines, startEngines } from './load/control-plane.ts';
import { createOverhead } from './load/create-overhead.ts';
import { heartbeatStorm } from './load/heartbeat-storm.ts';
import { describeMachine, machine } from './load/machine.ts';
import { registerBurst } from './load/register-burst.ts';
import { markdown, met, type ScenarioResult, type SummaryRow, summaryTable } from './load/report.ts';
import type { Scenario } from './load/scenario.ts';
import { Scope, withTimeout } from './load/scope.ts';
import { vmFleet } from './load/vm-fleet.ts';

const SCENARIOS: Scenario[] = [registerBurst, vmFleet, heartbeatStorm, apiReads, createOverhead];

const { values } = parseArgs({
  options: { only: { type: 'string' }, json: { type: 'string' } },
  strict: true,
});
const only = values.only?.split(',').map((s) => s.trim()) ?? null;
const unknown = only?.filter((name) => !SCENARIOS.some((s) => s.name === name)) ?? [];
if (unknown.length) {
  process.stderr.write(
    `unknown scenario ${unknown.join(', ')}; the scenarios are: ${SCENARIOS.map((s) => s.name).join(', ')}\n`,
  );
  process.exit(2);
}
const chosen = SCENARIOS.filter((s) => !only || only.includes(s.name));

const log = (line: string) => process.stderr.write(`${line}\n`);
const root = new Scope('suite');
const workDir = mkdtempSync(join(tmpdir(), 'aetherium-load-'));
root.defer('work folder', () => rmSync(workDir, { recursive: true, force: true }));
let current: Scope | null = null;

// Ctrl-C, a kill or a crash: stop what runs, the scenario's things first, then exit.
let interrupted = false;
const abort = (why: string, code: number) => {
  if (interrupted) return;
  interrupted = true;
  log(`\n${why}: stopping everything the suite started`);
  void (async () => {
    await current?.close();
    await root.close();
    process.exit(code);
  })();
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => abort(signal, 130));
process.on('uncaughtException', (err) => abort(`uncaught: ${err.stack ?? err}`, 1));
process.on('unhandledRejection', (err) => abort(`unhandled rejection: ${(err as Error)?.stack ?? err}`, 1));
// A closed stdout (`| head`) must not crash the suite before it has stopped what it started.
process.stdout.on('error', () => undefined);

let engines: Promise<Engines> | null = null;
const sharedEngines = () => {
  engines ??= startEngines(root);
  return engines;
};

const m = machine();
const started = new Date();
process.stdout.write(`${describeMachine(m)}\n\n`);

const results: { name: string; title: string; seconds: number; result?: ScenarioResult; error?: string }[] = [];
for (const scenario of chosen) {
  if (interrupted) break;
  const scope = new Scope(scenario.name);
  current = scope;
  const dir = mkdtempSync(join(workDir, `${scenario.name}-`));
  scope.defer('scenario folder', () => rmSync(dir, { recursive: true, force: true }));
  log(`── ${scenario.title}`);
  const t0 = performance.now();
  try {
    const result = await withTimeout(
      scenario.run({ engines: sharedEngines, scope, dir, log: (line) => log(`  ${line}`) }),
      scenario.budgetMs,
      scenario.title,
    );
    const seconds = (performance.now() - t0) / 1000;
    if (interrupted) break;
    results.push({ name: scenario.name, title: scenario.title, seconds, result });
    process.stdout.write(`## ${scenario.title} (${seconds.toFixed(0)} s)\n\n`);
    for (const { title, table } of result.tables) process.stdout.write(`${title}\n\n${markdown(table)}\n\n`);
    for (const note of result.notes ?? []) process.stdout.write(`- ${note}\n`);
    if (result.notes?.length) process.stdout.write('\n');
  } catch (err) {
    // Interrupted: what failed is only what the stop took away, and the process exits soon.
    if (interrupted) break;
    const seconds = (performance.now() - t0) / 1000;
    const message = (err as Error).stack ?? String(err);
    results.push({ name: scenario.name, title: scenario.title, seconds, error: message });
    process.stdout.write(`## ${scenario.title}: FAILED after ${seconds.toFixed(0)} s\n\n${message}\n\n`);
  } finally {
    await scope.close();
    current = null;
  }
}

// Interrupted: the stop in progress ends the process; nothing more is printed.
if (interrupted) await new Promise<never>(() => {});

const summary: SummaryRow[] = results.flatMap((r) => r.result?.summary ?? []);
const failed = results.filter((r) => r.error).map((r) => r.name);
process.stdout.write(`## summary\n\n${markdown(summaryTable(summary))}\n\n`);
const seconds = (Date.now() - started.getTime()) / 1000;
process.stdout.write(
  `${summary.filter((r) => met(r)).length} of ${summary.filter((r) => r.target).length} targets met` +
    `${failed.length ? `; scenarios that failed: ${failed.join(', ')}` : ''}; ${seconds.toFixed(0)} s in all\n`,
);
if (values.json) {
  writeFileSync(
    values.json,
    `${JSON.stringify(
      {
        machine: m,
        started_at: started.toISOString(),
        seconds,
        scenarios: results.map((r) => ({
          name: r.name,
          title: r.title,
          seconds: r.seconds,
          ...(r.error ? { error: r.error } : {}),
          ...(r.result
            ? { tables: r.result.tables, notes: r.result.notes ?? [], details: r.result.details ?? {} }
            : {}),
        })),
        summary: summary.map((r) => ({ ...r, met: met(r) })),
      },
      null,
      2,
    )}\n`,
  );
  log(`results written to ${values.json}`);
}
await root.close();
process.exitCode = failed.length ? 1 : 0;
