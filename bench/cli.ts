/**
 * `npm run bench:cli`: how long a CLI call takes, start to exit. Starts `aetherium dev` (through
 * bin/aetherium.mjs, so the build) on a free loopback port in a temporary directory, then times
 * RUNS calls (after WARMUP) of: bare `node -e 0` (the floor), `aetherium --version` and
 * `aetherium vm list` against that server. Prints the median and p90 of each; stops the server
 * and removes its directory at the end, and gives up after DEADLINE_S seconds.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildState } from '../scripts/build-state.mjs';
import { CLI, exited, freePort, waitForHttp } from '../test/harness/processes.ts';

const RUNS = Number(process.env.RUNS ?? 15);
const WARMUP = Number(process.env.WARMUP ?? 2);
const DEADLINE_S = Number(process.env.DEADLINE_S ?? 180);
const ROOT = join(CLI, '..', '..');

const dir = mkdtempSync(join(tmpdir(), 'aetherium-bench-cli-'));
let server: ChildProcess | null = null;

async function cleanUp(): Promise<void> {
  if (server && server.exitCode === null && server.signalCode === null) {
    server.kill('SIGTERM');
    await exited(server, 15_000).catch(() => server?.kill('SIGKILL'));
  }
  rmSync(dir, { recursive: true, force: true });
}

const deadline = setTimeout(() => {
  process.stderr.write(`bench:cli: not done after ${DEADLINE_S} s, giving up\n`);
  void cleanUp().finally(() => process.exit(1));
}, DEADLINE_S * 1000);

const port = await freePort();
const api = `http://127.0.0.1:${port}`;
const keyFile = join(dir, 'data', 'admin.key');
const env = { ...process.env, AETHERIUM_API: api, AETHERIUM_KEY_FILE: keyFile, AETHERIUM_LOG__LEVEL: 'warn' };

const state = buildState(ROOT);
if (state !== 'fresh') {
  process.stderr.write(`bench:cli: the build is ${state}, so the CLI runs the sources through tsx (npm run build)\n`);
}

let output = '';
server = spawn(process.execPath, [CLI, 'dev', '--port', String(port), '--host', '127.0.0.1', '--data-dir', 'data'], {
  cwd: dir,
  env,
  stdio: ['ignore', 'pipe', 'pipe'],
});
server.stdout!.on('data', (d) => (output += d));
server.stderr!.on('data', (d) => (output += d));

interface Case {
  name: string;
  args: string[];
}

const cases: Case[] = [
  { name: 'node -e 0', args: ['-e', '0'] },
  { name: 'aetherium --version', args: [CLI, '--version'] },
  { name: 'aetherium vm list', args: [CLI, 'vm', 'list'] },
];

function timeOnce(c: Case): number {
  const started = performance.now();
  const run = spawnSync(process.execPath, c.args, { cwd: dir, env, encoding: 'utf8', timeout: 30_000 });
  const ms = performance.now() - started;
  if (run.status !== 0) throw new Error(`${c.name} exited ${run.status ?? run.signal}: ${run.stderr}`);
  return ms;
}

/** Nearest rank. */
const percentile = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil(sorted.length * p) - 1)]!;

try {
  const startMs = await waitForHttp(
    `${api}/health`,
    () => true,
    90_000,
    () => output,
  );
  // The same machine, three commands: take turns, so that a burst of load elsewhere hits all alike.
  const times = new Map<string, number[]>(cases.map((c) => [c.name, []]));
  for (let round = 0; round < WARMUP + RUNS; round++) {
    for (const c of cases) {
      const ms = timeOnce(c);
      if (round >= WARMUP) times.get(c.name)!.push(ms);
    }
  }
  const after = buildState(ROOT);
  const width = Math.max(...cases.map((c) => c.name.length));
  const lines = [`${'command'.padEnd(width)}  median      p90`];
  for (const c of cases) {
    const sorted = times.get(c.name)!.sort((a, b) => a - b);
    const cell = (ms: number) => `${ms.toFixed(0).padStart(5)} ms`;
    lines.push(`${c.name.padEnd(width)}  ${cell(percentile(sorted, 0.5))} ${cell(percentile(sorted, 0.9))}`);
  }
  process.stdout.write(
    `bench:cli: ${RUNS} runs each after ${WARMUP} warm-ups; aetherium dev answered in ${startMs} ms\n` +
      `${lines.join('\n')}\n`,
  );
  if (after !== 'fresh') {
    process.stderr.write(`bench:cli: the sources changed during the run: some calls ran them through tsx\n`);
  }
} finally {
  clearTimeout(deadline);
  await cleanUp();
}
