/**
 * The CLI as a user runs it, against `aetherium dev` as a real process: `--json` (the API's data,
 * for every command group), `-o wide`, contexts, exit codes, `vm exec`, progress on a non-TTY
 * stderr, a drain watched to its end, output piped into `head`, the image build's steps, and the
 * shell completion scripts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliSystem, isolatedEnv, run, startCliSystem } from './harness/cli-system.ts';
import { CLI, freePort } from './harness/processes.ts';

let s: CliSystem;

beforeAll(async () => {
  s = await startCliSystem();
}, 150_000);

afterAll(async () => {
  await s?.stop();
});

// biome-ignore lint/suspicious/noExplicitAny: the tests read parsed JSON by its fields
type Json = any;
const json = <T = Json>(text: string): T => JSON.parse(text) as T;
/** Fields of a worker that move on their own between two reads. */
const VOLATILE = new Set([
  'last_seen',
  'uptime',
  'cpu_usage_percent',
  'memory_usage_percent',
  'disk_usage_percent',
  'metadata',
]);
const steady = (value: unknown): unknown =>
  Array.isArray(value)
    ? value.map(steady)
    : value && typeof value === 'object'
      ? Object.fromEntries(
          Object.entries(value)
            .filter(([k]) => !VOLATILE.has(k))
            .map(([k, v]) => [k, steady(v)]),
        )
      : value;
const header = (table: string) => table.split('\n')[0]!.split(/\s{2,}/);
const lines = (text: string) => text.split('\n').filter(Boolean);

describe('--json: the API data, for every command group', () => {
  it('vm create, list, get, exec, executions, start/stop', async () => {
    const created = await s.cli(['--json', 'vm', 'create', '--name', 'demo']);
    expect(created.code, created.stderr).toBe(0);
    const answer = json(created.stdout);
    expect(answer.vm).toEqual(expect.objectContaining({ name: 'demo', status: 'running' }));
    const { pending_reason, ...vm } = (await s.get('/vms/demo')) as Record<string, unknown>;
    expect(answer.vm).toEqual(vm);
    expect(answer.pending_reason).toBe(pending_reason);
    expect(answer.task).toEqual(await s.get(`/tasks/${answer.task_id}`));

    expect(json((await s.cli(['--json', 'vm', 'list'])).stdout)).toEqual(await s.get('/vms'));
    expect(json((await s.cli(['-o', 'json', 'vm', 'get', 'demo'])).stdout)).toEqual(await s.get('/vms/demo'));
    // The table shows the boot waterfall under the fields, every phase in boot order.
    const table = (await s.cli(['vm', 'get', 'demo'])).stdout;
    expect(table).toMatch(/^boot \(.+ from accepted to running\):$/m);
    const phases = [...table.matchAll(/^ {2}(\w+) +\d\d:\d\d:\d\d\.\d{3}/gm)].map((m) => m[1]);
    expect(phases).toEqual(['accepted', 'placed', 'delivered', 'driver_started', 'agent_ready', 'running']);
    const exec = await s.cli(['--json', 'vm', 'exec', 'demo', '--', 'sh', '-c', 'echo out; exit 3']);
    expect(exec.code).toBe(3);
    expect(json(exec.stdout)).toMatchObject({ exit_code: 3, stdout: 'out\n', timed_out: false });
    expect(json((await s.cli(['--json', 'vm', 'executions', 'demo'])).stdout)).toEqual(
      await s.get(`/vms/${vm.id}/executions`),
    );
    const stopped = await s.cli(['--json', 'vm', 'stop', 'demo']);
    expect(stopped.code, stopped.stderr).toBe(0);
    expect(json(stopped.stdout)).toMatchObject({ vm_id: vm.id, status: 'completed' });
    expect((await s.cli(['vm', 'start', 'demo'])).stdout).toMatch(/^started demo \(task .+\)$/m);
  }, 120_000);

  it('workers, cluster, tasks, tokens, audit, context', async () => {
    const workers = json((await s.cli(['--json', 'workers', 'list'])).stdout);
    expect(steady(workers)).toEqual(steady(await s.get('/workers')));
    const id = workers.workers[0].id;
    expect(steady(json((await s.cli(['--json', 'workers', 'get', id])).stdout))).toEqual(
      steady(await s.get(`/workers/${id}`)),
    );
    const stats = json((await s.cli(['--json', 'cluster', 'stats'])).stdout);
    expect(Object.keys(stats).sort()).toEqual(Object.keys((await s.get('/cluster/stats')) as object).sort());
    expect(steady(json((await s.cli(['--json', 'cluster', 'distribution'])).stdout))).toEqual(
      steady(await s.get('/cluster/distribution')),
    );
    const tasks = json((await s.cli(['--json', 'tasks', 'list'])).stdout);
    expect(tasks).toEqual(await s.get('/tasks'));
    expect(json((await s.cli(['--json', 'tasks', 'get', tasks.tasks[0].id])).stdout)).toEqual(
      await s.get(`/tasks/${tasks.tasks[0].id}`),
    );
    expect(json((await s.cli(['--json', 'tokens', 'list'])).stdout)).toEqual(await s.get('/tokens'));
    expect(json((await s.cli(['--json', 'tokens', 'list', '--join'])).stdout)).toEqual(await s.get('/tokens/join'));
    const audit = json((await s.cli(['--json', 'audit', '--limit', '5'])).stdout);
    expect(audit.entries.length).toBeGreaterThan(0);
    expect(audit).toEqual(await s.get('/audit?limit=5'));
    expect(json((await s.cli(['--json', 'context', 'list'])).stdout)).toMatchObject({ contexts: [] });
    // A stream: one JSON object per line.
    const logs = await s.cli(['--json', 'workers', 'logs', id, '--limit', '20']);
    expect(logs.code, logs.stderr).toBe(0);
    for (const line of lines(logs.stdout)) expect(json(line)).toHaveProperty('msg');
  }, 120_000);

  it('events: one JSON object per line, until Ctrl-C (exit 130)', async () => {
    const child = spawn(process.execPath, [CLI, '--json', 'events', '--since', '0'], {
      cwd: s.dir,
      env: { ...process.env, ...isolatedEnv(s.dir), AETHERIUM_API: s.api, AETHERIUM_KEY_FILE: s.keyFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no events: ${out}`)), 30_000);
      child.stdout.on('data', (d) => {
        out += d;
        if (lines(out).length >= 3) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(130);
    const events = lines(out).map((l) => json(l));
    expect(events[0]).toMatchObject({ id: expect.any(Number), type: expect.any(String), data: expect.any(Object) });
    expect(events.map((e) => e.id)).toEqual([...events.map((e) => e.id)].sort((a, b) => a - b));
  }, 60_000);
});

describe('-o wide', () => {
  it('adds columns to the tables of VMs, workers and tasks', async () => {
    const table = header((await s.cli(['vm', 'list'])).stdout);
    const wide = header((await s.cli(['vm', 'list', '-o', 'wide'])).stdout);
    expect(table).toEqual(['ID', 'NAME', 'STATUS', 'WORKER', 'VCPUS', 'MEMORY']);
    expect(wide).toEqual(expect.arrayContaining([...table, 'DRIVER', 'ZONE', 'IMAGE', 'CREATED']));
    const vmRow = (await s.cli(['-o', 'wide', 'vm', 'list'])).stdout.split('\n')[1]!;
    expect(vmRow).toMatch(/demo .* sandbox|demo .* process/);

    const workers = header((await s.cli(['workers', 'list'])).stdout);
    expect(workers).not.toContain('ADDRESS');
    expect(header((await s.cli(['workers', 'list', '-o', 'wide'])).stdout)).toEqual(
      expect.arrayContaining([...workers, 'ADDRESS', 'LABELS', 'UPTIME', 'CAPABILITIES']),
    );
    const tasks = header((await s.cli(['tasks', 'list'])).stdout);
    expect(tasks).not.toContain('RETRIES');
    expect(header((await s.cli(['tasks', 'list', '-o', 'wide'])).stdout)).toEqual(
      expect.arrayContaining([...tasks, 'RETRIES', 'STARTED', 'COMPLETED']),
    );
  }, 60_000);
});

describe('contexts', () => {
  it('add, use, list, current, remove: the file is 0600 in the user config directory; no token printed', async () => {
    const home = join(s.dir, 'ctx');
    mkdirSync(home);
    const env = { ...isolatedEnv(home), XDG_CONFIG_HOME: join(home, 'xdg') };
    const ctx = (...args: string[]) => run(args, { cwd: home, env });
    const tokenFile = join(home, 'admin.token');
    writeFileSync(tokenFile, `${s.adminKey}\n`, { mode: 0o600 });
    const wrongFile = join(home, 'wrong.token');
    writeFileSync(wrongFile, 'ae_wrong_token\n', { mode: 0o600 });

    const added = await ctx('context', 'add', 'local', '--api', s.api, '--token-file', tokenFile);
    expect(added.code, added.stderr).toBe(0);
    const file = join(home, 'xdg', 'aetherium', 'config.yaml');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(home, 'xdg', 'aetherium')).mode & 0o777).toBe(0o700);
    expect(readFileSync(file, 'utf8')).not.toContain(s.adminKey);
    expect((await ctx('context', 'add', 'wrong', '--api', s.api, '--token-file', wrongFile)).code).toBe(0);

    const list = await ctx('context', 'list');
    expect(list.stdout).toMatch(/^\*\s+local\s/m);
    expect(list.stdout).toMatch(/^\s+wrong\s/m);
    expect((await ctx('context', 'current')).stdout).toBe('local\n');
    // The current context carries the API and the token: no AETHERIUM_API, no key file.
    const listed = await ctx('--json', 'vm', 'list');
    expect(listed.code, listed.stderr).toBe(0);
    expect(json(listed.stdout).vms.map((v: { name: string }) => v.name)).toContain('demo');

    const refused = await ctx('--context', 'wrong', 'vm', 'list');
    expect(refused.code).toBe(4);
    expect(refused.stderr).toMatch(/^error: .*context wrong/);
    expect((await ctx('context', 'use', 'wrong')).code).toBe(0);
    expect((await ctx('vm', 'list')).code).toBe(4);
    expect((await ctx('context', 'use', 'ghost')).code).toBe(3);
    expect((await ctx('context', 'remove', 'wrong')).code).toBe(0);
    expect((await ctx('context', 'current')).code).toBe(3);
    expect((await ctx('context', 'use', 'local')).code).toBe(0);
    const contexts = json((await ctx('--json', 'context', 'list')).stdout);
    expect(contexts).toMatchObject({ config_file: file, current_context: 'local' });
    expect(contexts.contexts.map((c: { name: string }) => c.name)).toEqual(['local']);

    // --token-stdin keeps it in the file (0600), and still never prints it.
    const stdin = await run(['context', 'add', 'inline', '--api', s.api, '--token-stdin', '--use'], {
      cwd: home,
      env,
      input: `${s.adminKey}\n`,
    });
    expect(stdin.code, stdin.stderr).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await ctx('cluster', 'stats')).code).toBe(0);
    const shown = await ctx('-o', 'wide', 'context', 'list');
    expect(shown.stdout).toContain('(in the config file)');
    for (const out of [added, list, listed, refused, stdin, shown]) {
      expect(out.stdout + out.stderr).not.toContain(s.adminKey);
      expect(out.stdout + out.stderr).not.toContain('ae_wrong_token');
    }
  }, 90_000);
});

describe('exit codes', () => {
  it('3 not found, 4 bad token, 5 forbidden, 6 conflict, 7 unreachable, 2 usage', async () => {
    const ghost = await s.cli(['vm', 'get', 'ghost']);
    expect(ghost.code).toBe(3);
    expect(ghost.stderr).toBe('error: VM "ghost" was not found\n');

    const bad = await s.cli(['--token', 'ae_not_a_real_key', 'vm', 'list']);
    expect(bad.code).toBe(4);
    expect(lines(bad.stderr)).toHaveLength(1);
    expect(bad.stderr).toMatch(/^error: .*--token/);

    const viewer = await s.cli(['tokens', 'create', '--name', 'looker', '--role', 'viewer']);
    expect(viewer.code, viewer.stderr).toBe(0);
    const viewerKey = viewer.stdout.split('\n')[0]!;
    expect((await s.cli(['--token', viewerKey, 'vm', 'list'])).code).toBe(0);
    const forbidden = await s.cli(['--token', viewerKey, 'vm', 'create', '--name', 'nope']);
    expect(forbidden.code).toBe(5);
    expect(forbidden.stderr).toMatch(/^error: .*operator/);

    const tasks = json((await s.cli(['--json', 'tasks', 'list', '--status', 'completed'])).stdout).tasks;
    const cancelled = await s.cli(['tasks', 'cancel', tasks[0].id]);
    expect(cancelled.code).toBe(6);
    expect(cancelled.stderr).toMatch(/^error: task .* already completed/);

    const down = await s.cli(['--api', `http://127.0.0.1:${await freePort()}`, 'cluster', 'stats']);
    expect(down.code).toBe(7);
    expect(down.stderr).toMatch(/^error: cannot reach the control plane at .* Pass --api/);
    // A stream that never opened is an error too, not a retry forever.
    expect((await s.cli(['--api', `http://127.0.0.1:${await freePort()}`, 'events'])).code).toBe(7);

    expect((await s.cli(['vm', 'create', '--name', 'Not_Valid'])).code).toBe(2);
    expect((await s.cli(['vm', 'list', '--bogus'])).code).toBe(2);
    expect((await s.cli(['vm'])).code).toBe(2);
    expect((await s.cli(['-o', 'yaml', 'vm', 'list'])).code).toBe(2);
  }, 90_000);

  it('vm exec: the command’s own code, 124 on its timeout, piped stdin, and the CLI’s codes only when the CLI failed', async () => {
    expect((await s.cli(['vm', 'exec', 'demo', '--', 'sh', '-c', 'exit 7'])).code).toBe(7);
    const both = await s.cli(['vm', 'exec', 'demo', '--', 'sh', '-c', 'echo out; echo err >&2']);
    expect(both).toMatchObject({ code: 0, stdout: 'out\n', stderr: 'err\n' });
    const piped = await s.cli(['vm', 'exec', 'demo', '--', 'tr', 'a-z', 'A-Z'], { input: 'hello\n' });
    expect(piped).toMatchObject({ code: 0, stdout: 'HELLO\n' });
    const started = Date.now();
    const slow = await s.cli(['vm', 'exec', 'demo', '--timeout', '0.5', '--', 'sleep', '30']);
    expect(slow.code).toBe(124);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(slow.stderr).toMatch(/timed out after 0\.5 s/);
    const ghost = await s.cli(['vm', 'exec', 'ghost', '--', 'true']);
    expect(ghost.code).toBe(3);
    expect(ghost.stderr).toMatch(/^error: VM "ghost" was not found \(exit 3 is aetherium's, not the command's\)$/m);
  }, 90_000);

  it('vm exec: Ctrl-C cancels the command in the VM and exits 130', async () => {
    const child = spawn(process.execPath, [CLI, 'vm', 'exec', 'demo', '--', 'sh', '-c', 'echo ready; sleep 60'], {
      cwd: s.dir,
      env: { ...process.env, ...isolatedEnv(s.dir), AETHERIUM_API: s.api, AETHERIUM_KEY_FILE: s.keyFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await new Promise<void>((resolve) => child.stdout.on('data', (d) => String(d).includes('ready') && resolve()));
    const started = Date.now();
    child.kill('SIGINT');
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(130);
    expect(Date.now() - started).toBeLessThan(5000);
    // The command's task ends cancelled, not still running in the VM.
    const deadline = Date.now() + 15_000;
    let last: { status: string } | undefined;
    while (Date.now() < deadline) {
      const tasks = json((await s.cli(['--json', 'tasks', 'list', '--type', 'vm:execute'])).stdout).tasks;
      last = tasks.find((t: { payload: { args: string[] } }) => t.payload.args.join(' ').includes('sleep 60'));
      if (last && last.status !== 'running' && last.status !== 'scheduled') break;
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(last?.status).toBe('cancelled');
  }, 60_000);
});

describe('progress and pipes', () => {
  it('vm create prints its phases on a non-TTY stderr: plain, short, without ANSI', async () => {
    const created = await s.cli(['vm', 'create', '--name', 'p1']);
    expect(created.code, created.stderr).toBe(0);
    expect(created.stdout).toMatch(/^VM p1 \(.+\) running on worker .+ with driver \w+\n$/);
    expect(created.stderr).not.toContain('\x1b');
    const progress = lines(created.stderr);
    for (const line of progress) expect(line).toMatch(/^VM p1: .+ \(\d+\.\ds\)$/);
    expect(progress[0]).toMatch(/queued for the scheduler/);
    expect(progress.at(-1)).toMatch(/ready on .+ \(driver \w+\)/);
    expect((await s.cli(['-q', 'vm', 'create', '--name', 'p2'])).stderr).toBe('');
    const noWait = await s.cli(['vm', 'create', '--name', 'p3', '--no-wait']);
    expect(noWait).toMatchObject({ code: 0, stderr: '' });
    expect(noWait.stdout).toMatch(/^VM p3 \(.+\) accepted; task .+$/m);
    // A VM no worker can hold: pending with the scheduler's reason, then the wait times out (exit 8).
    const big = await s.cli(['vm', 'create', '--name', 'big', '--vcpus', '64', '--timeout', '1']);
    expect(big.code).toBe(8);
    expect(big.stderr).toMatch(/^VM big: pending: insufficient capacity: .*cpu \(\d+\.\ds\)$/m);
    expect(lines(big.stderr).at(-1)).toMatch(/^error: VM big is not running after 1000 ms .*it still exists/);
    expect((await s.cli(['vm', 'delete', 'big'])).code).toBe(0);
  }, 60_000);

  it('output piped into head ends quietly', () => {
    const script = `"${process.execPath}" "${CLI}" vm exec demo -- sh -c 'yes | head -c 3000000' | head -n 1; echo "status \${PIPESTATUS[0]}"`;
    const result = spawnSync('bash', ['-c', script], {
      cwd: s.dir,
      env: { ...process.env, ...isolatedEnv(s.dir), AETHERIUM_API: s.api, AETHERIUM_KEY_FILE: s.keyFile },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(result.stdout).toBe('y\nstatus 0\n');
    expect(result.stderr).toBe('');
  });

  it('workers drain --wait shows the VMs left until drained', async () => {
    const id = json((await s.cli(['--json', 'workers', 'list'])).stdout).workers[0].id;
    const drain = await s.cli(['workers', 'drain', id, '--deadline', '1s', '--wait']);
    expect(drain.code, drain.stderr).toBe(0);
    expect(drain.stdout).toMatch(new RegExp(`^worker ${id} is draining \\(deadline .+\\)`));
    expect(drain.stdout).toMatch(new RegExp(`worker ${id} is drained: no VM left`));
    const bars = lines(drain.stderr);
    expect(bars.length).toBeGreaterThan(0);
    for (const line of bars) expect(line).toMatch(/^worker .+: \[[#-]{10}\] \d+\/\d+ VMs left \(\d+\.\ds\)$/);
    expect(bars.at(-1)).toMatch(/\[#{10}\] 0\/\d+ VMs left/);
    expect((await s.cli(['workers', 'activate', id])).code).toBe(0);
  }, 60_000);
});

describe('image build', () => {
  it('shows the script’s steps numbered with the elapsed time; a failure is one line and exit 1', async () => {
    const script = join(s.dir, 'fake-build.sh');
    writeFileSync(
      script,
      [
        'set -e',
        'log() { echo "build.sh: $*" >&2; }',
        'log "step 1/3: tools"',
        'echo "some apt noise"',
        'log "step 2/3: kernel"',
        '[ "$FAIL" = 1 ] && { echo "build.sh: error: no kernel for you" >&2; exit 1; }',
        'log "step 3/3: install"',
        'mkdir -p "$1" && echo \'{"kernel":{"release":"6.1.0-test"}}\' > "$1/manifest.json"',
      ].join('\n'),
    );
    chmodSync(script, 0o755);
    const out = join(s.dir, 'image');
    const built = await s.cli(['image', 'build', out, '--script', script]);
    expect(built.code, built.stderr).toBe(0);
    expect(built.stdout).toBe(`guest image built in ${out} (kernel 6.1.0-test)\n`);
    expect(lines(built.stderr)).toEqual([
      expect.stringMatching(/^image build: step 1\/3: tools \(\d+\.\ds\)$/),
      expect.stringMatching(/^image build: step 2\/3: kernel \(\d+\.\ds\)$/),
      expect.stringMatching(/^image build: step 3\/3: install \(\d+\.\ds\)$/),
      expect.stringMatching(/^image build: built \(\d+\.\ds\)$/),
    ]);
    const failed = await s.cli(['image', 'build', out, '--script', script], { env: { FAIL: '1' } });
    expect(failed.code).toBe(1);
    expect(lines(failed.stderr).filter((l) => l.startsWith('error: '))).toEqual([
      `error: ${script} failed (exit 1): no kernel for you`,
    ]);
  }, 60_000);

  it('image/build.sh numbers its steps: one step line per phase, all of the same total', () => {
    const text = readFileSync(new URL('../image/build.sh', import.meta.url), 'utf8');
    const steps = text.split('\n').filter((l) => /^step "/.test(l));
    expect(steps.length).toBe(Number(/^STEPS=(\d+)$/m.exec(text)?.[1]));
    expect(spawnSync('sh', ['-n', fileURLToPathOf('../image/build.sh')]).status).toBe(0);
  });
});

describe('completion', () => {
  const script = (shell: string) => spawnSync(process.execPath, [CLI, 'completion', shell], { encoding: 'utf8' });

  it('bash: valid, and completes commands, subcommands, flags and their choices', () => {
    const bash = script('bash');
    expect(bash.status).toBe(0);
    const file = join(s.dir, 'aetherium.bash');
    writeFileSync(file, bash.stdout);
    expect(spawnSync('bash', ['-n', file]).status).toBe(0);
    const complete = (...words: string[]) => {
      const probe = [
        `source ${file}`,
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}`,
        '_aetherium; printf "%s\\n" "$' + '{COMPREPLY[@]}"',
      ].join('\n');
      return lines(spawnSync('bash', ['-c', probe], { encoding: 'utf8' }).stdout);
    };
    expect(complete('aetherium', 'vm', 'cr')).toEqual(['create']);
    expect(complete('aetherium', 'con')).toEqual(['context']);
    expect(complete('aetherium', 'context', '')).toEqual(
      expect.arrayContaining(['add', 'use', 'list', 'current', 'remove']),
    );
    expect(complete('aetherium', 'vm', 'create', '--dri')).toEqual(['--driver']);
    expect(complete('aetherium', 'vm', 'create', '--strategy', '')).toEqual(['binpack', 'spread']);
    expect(complete('aetherium', '-o', 'w')).toEqual(['wide']);
    expect(complete('aetherium', '--api', 'http://x', 'workers', 'dr')).toEqual(['drain']);
    expect(complete('aetherium', 'vm', 'ls', '--a')).toEqual(expect.arrayContaining(['--all', '--api']));
    expect(complete('aetherium', 'completion', '')).toEqual(['bash', 'zsh', 'fish']);
    const registered = spawnSync('bash', ['-c', `source ${file}; complete -p aetherium`], { encoding: 'utf8' });
    expect(registered.stdout).toMatch(/-F _aetherium aetherium/);
  });

  it('zsh and fish: generated from the same tree (checked by the shell when it is installed)', () => {
    for (const shell of ['zsh', 'fish']) {
      const generated = script(shell);
      expect(generated.status).toBe(0);
      expect(generated.stdout).toContain('create');
      expect(generated.stdout).toContain('--worker-label');
      const installed = spawnSync('sh', ['-c', `command -v ${shell}`]).status === 0;
      if (!installed) continue;
      const file = join(s.dir, `aetherium.${shell}`);
      writeFileSync(file, generated.stdout);
      expect(spawnSync(shell, ['-n', file]).status).toBe(0);
    }
    expect(script('tcsh').status).toBe(2);
  });
});

function fileURLToPathOf(relative: string): string {
  return new URL(relative, import.meta.url).pathname;
}
