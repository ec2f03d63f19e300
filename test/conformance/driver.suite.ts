/**
 * The VmDriver conformance suite: one set of tests, run unchanged against every driver.
 *
 *   driverConformance('sandbox', async (stateDir) => new SandboxDriver({ stateDir }));
 *
 * The suite makes a fresh temporary state dir per run and passes it to `make`; it calls `make`
 * a second time with the same dir to play an agent restart (recover). Every VM it creates is
 * deleted in afterAll, and the dir removed.
 *
 * The faults part: a VM killed from outside is reported by `watch` (and one stopped or deleted on
 * request is not), a boot that times out or a delete during a create leaves no process behind,
 * and recover() kills the processes of VMs it has no record of. A VM's host processes are found by
 * what marks them: the VM's directory on their command line or in their environment.
 */
import { randomInt, randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AetheriumError, DRIVER_MINIMUMS } from '../../src/domain/index.ts';
import type { VmDriver, VmExit, VmSpec } from '../../src/ports/vm-driver.ts';

export type MakeDriver = (stateDir: string) => Promise<VmDriver>;

/** Host pids whose command line has `arg` as one of its arguments (zombies have none, so they do not count). */
export function hostProcessesWithArg(arg: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').includes(arg)) pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Host pids whose command line or environment mentions `text` (a VM's directory marks its processes). */
export function hostProcessesMentioning(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmdline === '') continue; // a zombie or a kernel thread
      if (cmdline.includes(text) || readFileSync(`/proc/${entry}/environ`, 'utf8').includes(text))
        pids.push(Number(entry));
    } catch {
      // exited while we looked
    }
  }
  return pids;
}

/** Polls `check` until it returns true; false at the deadline. */
export async function eventually(check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** A `sleep` argument that adds nothing to the duration but makes the process findable on the host. */
export function sleepMarker(): string {
  return `0.000${randomInt(100_000_000, 999_999_999)}`;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof AetheriumError) return err.code;
    return `not an AetheriumError: ${String(err)}`;
  }
  return 'resolved';
}

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

export interface ConformanceOptions {
  /**
   * How many processes of the VM have `arg` on their command line. By default the host's /proc is
   * searched (sandboxes and plain processes are host processes); a real VM looks inside itself.
   */
  processesWithArg?: (driver: VmDriver, vmId: string, arg: string) => Promise<number>;
  /**
   * A driver on the same state dir whose boot timeout is shorter than its boot takes, for the
   * boot-timeout case. The process driver has no boot that could time out, so it gives none.
   */
  impatient?: (stateDir: string) => Promise<VmDriver>;
}

export function driverConformance(label: string, make: MakeDriver, options: ConformanceOptions = {}): void {
  const processesWithArg =
    options.processesWithArg ??
    (async (_driver: VmDriver, _vmId: string, arg: string) => hostProcessesWithArg(arg).length);
  describe(`VmDriver conformance: ${label}`, { timeout: 30_000 }, () => {
    let stateDir: string;
    let driver: VmDriver;
    let vm: VmSpec;
    const ids = new Set<string>();
    const leakCanary = `AETHERIUM_CONFORMANCE_CANARY_${randomInt(1_000_000)}`;

    const newSpec = (overrides: Partial<VmSpec> = {}): VmSpec => {
      const spec: VmSpec = {
        id: `conf-${randomUUID()}`,
        name: 'conformance-vm',
        vcpus: 1,
        memory_mb: 256,
        disk_gb: 1,
        env: { SPEC_VAR: 'from-spec', SHARED: 'from-spec' },
        ...overrides,
      };
      ids.add(spec.id);
      return spec;
    };
    const sh = (script: string, extra: Record<string, unknown> = {}) =>
      driver.exec(vm.id, { command: 'sh', args: ['-c', script], ...extra });

    beforeAll(async () => {
      process.env[leakCanary] = 'leaked';
      stateDir = await mkdtemp(join(tmpdir(), 'aetherium-conformance-'));
      driver = await make(stateDir);
      vm = newSpec();
      await driver.create(vm);
    }, 60_000);

    afterAll(async () => {
      delete process.env[leakCanary];
      for (const id of ids) await driver.delete(id).catch(() => {});
      await driver.close();
      await rm(stateDir, { recursive: true, force: true });
    }, 60_000);

    it('create returns a running VM, and a second create is a no-op', async () => {
      const first = await driver.status(vm.id);
      expect(first.state).toBe('running');
      const again = await driver.create(vm);
      expect(again.state).toBe('running');
      expect(again.pid).toBe(first.pid);
      expect((await driver.list()).filter((v) => v.id === vm.id)).toHaveLength(1);
    });

    it('concurrent creates of one id start one VM', async () => {
      const spec = newSpec();
      const results = await Promise.all([driver.create(spec), driver.create(spec), driver.create(spec)]);
      expect(results.map((r) => r.state)).toEqual(['running', 'running', 'running']);
      expect(new Set(results.map((r) => r.pid)).size).toBe(1);
      expect((await driver.status(spec.id)).pid).toBe(results[0]?.pid);
      await driver.delete(spec.id);
    });

    it('exec returns stdout and exit code 0', async () => {
      const result = await driver.exec(vm.id, { command: 'echo', args: ['hello', 'world'] });
      expect(result).toMatchObject({ exit_code: 0, stdout: 'hello world\n', stderr: '' });
      expect(result.timed_out).toBeFalsy();
    });

    it('exec captures stderr separately', async () => {
      const result = await sh('echo out; echo oops >&2');
      expect(result.stdout).toBe('out\n');
      expect(result.stderr).toBe('oops\n');
    });

    it('a non-zero exit is a result, not an error', async () => {
      const result = await sh('echo partial; exit 3');
      expect(result.exit_code).toBe(3);
      expect(result.stdout).toBe('partial\n');
    });

    it('an unknown command exits 127', async () => {
      const result = await driver.exec(vm.id, { command: 'aetherium-no-such-command' });
      expect(result.exit_code).toBe(127);
      expect(result.stderr).not.toBe('');
    });

    it('passes args verbatim, without a shell in between', async () => {
      const args = ['two words', '$HOME', '"quoted"', "it's", '', '*', 'a=b'];
      const result = await driver.exec(vm.id, { command: 'printf', args: ['[%s]\n', ...args] });
      expect(result.stdout).toBe(args.map((a) => `[${a}]\n`).join(''));
    });

    it('passes env over a clean environment: spec env, request env on top, PATH set, nothing from the host', async () => {
      const result = await driver.exec(vm.id, { command: 'env', env: { FOO: 'bar baz', SHARED: 'from-request' } });
      const env = new Map(
        result.stdout
          .split('\n')
          .filter(Boolean)
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      expect(env.get('FOO')).toBe('bar baz');
      expect(env.get('SPEC_VAR')).toBe('from-spec');
      expect(env.get('SHARED')).toBe('from-request');
      expect(env.get('PATH')).toMatch(/\/usr\/bin/);
      expect(env.has(leakCanary)).toBe(false);
    });

    it('runs in cwd: relative paths start at the VM root', async () => {
      expect((await sh('mkdir -p work/sub && echo content > work/sub/file.txt')).exit_code).toBe(0);
      const pwd = await driver.exec(vm.id, { command: 'pwd', cwd: 'work/sub' });
      expect(pwd.stdout).toMatch(/\/work\/sub\n$/);
      const cat = await driver.exec(vm.id, { command: 'cat', args: ['file.txt'], cwd: 'work/sub' });
      expect(cat.stdout).toBe('content\n');
      const root = await driver.exec(vm.id, { command: 'ls' });
      expect(root.stdout.split('\n')).toContain('work');
    });

    it('a cwd that does not exist is a validation error', async () => {
      expect(await codeOf(driver.exec(vm.id, { command: 'pwd', cwd: 'no/such/dir' }))).toBe('validation_failed');
    });

    it('feeds stdin; without stdin a reader sees end of input at once', async () => {
      const withInput = await driver.exec(vm.id, { command: 'cat', stdin: 'line 1\nline 2\n' });
      expect(withInput.stdout).toBe('line 1\nline 2\n');
      const started = Date.now();
      const without = await driver.exec(vm.id, { command: 'cat', timeout_ms: 10_000 });
      expect(without.timed_out).toBeFalsy();
      expect(without.stdout).toBe('');
      expect(Date.now() - started).toBeLessThan(5_000);
    });

    it('streams output through the callbacks while the command runs', async () => {
      const out: Array<{ chunk: string; at: number }> = [];
      const err: string[] = [];
      const result = await sh('echo one; sleep 0.6; echo two; echo err >&2', {
        onStdout: (chunk: string) => out.push({ chunk, at: Date.now() }),
        onStderr: (chunk: string) => err.push(chunk),
      });
      const finished = Date.now();
      expect(out.map((o) => o.chunk).join('')).toBe('one\ntwo\n');
      expect(err.join('')).toBe('err\n');
      expect(result.stdout).toBe('one\ntwo\n');
      expect(finished - (out[0]?.at ?? finished)).toBeGreaterThan(300); // the first line came before the end
    });

    it('keeps at most 10 MiB per stream and says so', async () => {
      const result = await sh('head -c 11534336 /dev/zero | tr "\\000" a');
      expect(result.exit_code).toBe(0);
      expect(result.stdout.startsWith('aaaa')).toBe(true);
      expect(result.stdout).toMatch(/truncated/);
      expect(result.stdout.length).toBeLessThanOrEqual(10 * 1024 * 1024 + 500);
      expect(result.stdout.length).toBeGreaterThanOrEqual(10 * 1024 * 1024);
    });

    it('commands of one VM run concurrently', async () => {
      const started = Date.now();
      const results = await Promise.all([sh('sleep 1'), sh('sleep 1'), sh('sleep 1')]);
      expect(results.map((r) => r.exit_code)).toEqual([0, 0, 0]);
      expect(Date.now() - started).toBeLessThan(2_500);
    });

    it('a timeout kills the command and its children: timed_out, exit code 124', async () => {
      const [m1, m2] = [sleepMarker(), sleepMarker()];
      const started = Date.now();
      const result = await sh(`sleep 600 ${m1} & sleep 600 ${m2}; wait`, { timeout_ms: 500 });
      expect(result.timed_out).toBe(true);
      expect(result.exit_code).toBe(124);
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(
        await eventually(
          async () =>
            (await processesWithArg(driver, vm.id, m1)) === 0 && (await processesWithArg(driver, vm.id, m2)) === 0,
          2_000,
        ),
      ).toBe(true);
    });

    it('an abort kills the command and its children promptly and rejects with an AbortError', async () => {
      const [m1, m2] = [sleepMarker(), sleepMarker()];
      const controller = new AbortController();
      const pending = sh(`sleep 600 ${m1} & sleep 600 ${m2}; wait`, { signal: controller.signal });
      expect(
        await eventually(
          async () =>
            (await processesWithArg(driver, vm.id, m1)) > 0 && (await processesWithArg(driver, vm.id, m2)) > 0,
          5_000,
        ),
      ).toBe(true);
      const abortedAt = Date.now();
      controller.abort();
      const err = await errorOf(pending);
      expect(err.name).toBe('AbortError');
      expect(Date.now() - abortedAt).toBeLessThan(2_000);
      expect(
        await eventually(
          async () =>
            (await processesWithArg(driver, vm.id, m1)) === 0 && (await processesWithArg(driver, vm.id, m2)) === 0,
          2_000 - (Date.now() - abortedAt),
        ),
      ).toBe(true);
    });

    it('an already aborted signal rejects without running the command', async () => {
      const controller = new AbortController();
      controller.abort();
      const err = await errorOf(sh('touch ran-after-abort', { signal: controller.signal }));
      expect(err.name).toBe('AbortError');
      expect((await driver.exec(vm.id, { command: 'test', args: ['-e', 'ran-after-abort'] })).exit_code).toBe(1);
    });

    it('an unknown VM: exec/start/stop say not_found, status says missing, delete is fine', async () => {
      const id = `conf-unknown-${randomUUID()}`;
      expect(await codeOf(driver.exec(id, { command: 'echo' }))).toBe('not_found');
      expect(await codeOf(driver.start(id))).toBe('not_found');
      expect(await codeOf(driver.stop(id))).toBe('not_found');
      expect((await driver.status(id)).state).toBe('missing');
      await expect(driver.delete(id)).resolves.toBeUndefined();
    });

    it('rejects bad input with validation_failed', async () => {
      expect(await codeOf(driver.exec(vm.id, { command: '' }))).toBe('validation_failed');
      expect(await codeOf(driver.exec(vm.id, { command: '   ' }))).toBe('validation_failed');
      expect(await codeOf(driver.exec(vm.id, { command: 'echo', timeout_ms: -1 }))).toBe('validation_failed');
      expect(await codeOf(driver.exec('../escape', { command: 'echo' }))).toBe('validation_failed');
      expect(await codeOf(driver.create({ ...newSpec(), id: '../escape' }))).toBe('validation_failed');
      expect(await codeOf(driver.create({ ...newSpec(), memory_mb: 0 }))).toBe('validation_failed');
      expect(await codeOf(driver.create({ ...newSpec(), vcpus: -1 }))).toBe('validation_failed');
      expect(existsSync(join(stateDir, '..', 'escape'))).toBe(false);
    });

    it('a create whose signal is already aborted rejects and leaves nothing', async () => {
      const spec = newSpec();
      const controller = new AbortController();
      controller.abort();
      expect((await errorOf(driver.create(spec, controller.signal))).name).toBe('AbortError');
      expect((await driver.status(spec.id)).state).toBe('missing');
      expect(existsSync(join(stateDir, spec.id))).toBe(false);
    });

    it('list reports the running VM', async () => {
      const list = await driver.list();
      expect(list.find((v) => v.id === vm.id)?.state).toBe('running');
      expect(list.every((v) => ['running', 'stopped'].includes(v.state))).toBe(true);
    });

    it('recover: a new driver on the same state dir takes the running VM back and cleans half-created ones', async () => {
      const partial = `conf-partial-${randomUUID()}`;
      await mkdir(join(stateDir, partial, 'root'), { recursive: true });
      const second = await make(stateDir);
      try {
        const report = await second.recover();
        expect(report.recovered).toContain(vm.id);
        expect(report.lost).not.toContain(vm.id);
        expect(report.lost).toContain(partial);
        expect(report.killed).toEqual([]);
        expect(existsSync(join(stateDir, partial))).toBe(false);
        expect((await second.status(vm.id)).state).toBe('running');
        const result = await second.exec(vm.id, { command: 'cat', args: ['work/sub/file.txt'] });
        expect(result.stdout).toBe('content\n');
      } finally {
        await second.close();
      }
      // Closing a driver (the agent going away) leaves the VMs running.
      expect((await driver.exec(vm.id, { command: 'echo', args: ['still here'] })).stdout).toBe('still here\n');
    });

    it('stop kills running commands and stops the VM; start brings it back with its files', async () => {
      const spec = newSpec();
      await driver.create(spec);
      await driver.exec(spec.id, { command: 'sh', args: ['-c', 'echo kept > persist.txt'] });
      const marker = sleepMarker();
      const running = driver.exec(spec.id, { command: 'sleep', args: ['600', marker] });
      expect(await eventually(async () => (await processesWithArg(driver, spec.id, marker)) > 0, 5_000)).toBe(true);

      await driver.stop(spec.id);
      const killed = await running;
      expect(killed.exit_code).not.toBe(0);
      expect(killed.timed_out).toBeFalsy();
      expect(await eventually(async () => (await processesWithArg(driver, spec.id, marker)) === 0, 2_000)).toBe(true);
      expect((await driver.status(spec.id)).state).toBe('stopped');
      expect(await codeOf(driver.exec(spec.id, { command: 'echo' }))).toBe('conflict');
      await driver.stop(spec.id); // idempotent
      expect((await driver.list()).find((v) => v.id === spec.id)?.state).toBe('stopped');

      expect((await driver.start(spec.id)).state).toBe('running');
      expect((await driver.start(spec.id)).state).toBe('running');
      expect((await driver.exec(spec.id, { command: 'cat', args: ['persist.txt'] })).stdout).toBe('kept\n');
      await driver.delete(spec.id);
    });

    it('delete removes the VM and its directory; deleting again is fine', async () => {
      const spec = newSpec();
      await driver.create(spec);
      await driver.exec(spec.id, { command: 'sh', args: ['-c', 'echo old > old.txt'] });
      expect(existsSync(join(stateDir, spec.id))).toBe(true);
      await driver.delete(spec.id);
      expect(existsSync(join(stateDir, spec.id))).toBe(false);
      expect((await driver.status(spec.id)).state).toBe('missing');
      expect((await driver.list()).some((v) => v.id === spec.id)).toBe(false);
      expect(await codeOf(driver.exec(spec.id, { command: 'echo' }))).toBe('not_found');
      await expect(driver.delete(spec.id)).resolves.toBeUndefined();
      // The id can be used again, for a fresh VM.
      await driver.create(spec);
      expect((await driver.exec(spec.id, { command: 'test', args: ['-e', 'old.txt'] })).exit_code).toBe(1);
      await driver.delete(spec.id);
    });

    it('declares its minimum (the domain table) and refuses a VM below it before starting anything', async () => {
      expect(driver.info.min).toEqual(DRIVER_MINIMUMS[driver.info.name]);
      const spec = newSpec({ memory_mb: driver.info.min.memory_mb - 1 });
      const err = await errorOf(driver.create(spec));
      expect((err as AetheriumError).code).toBe('validation_failed');
      expect(err.message).toMatch(/at least/);
      expect(existsSync(join(stateDir, spec.id))).toBe(false);
    });

    it('watch: a VM killed from outside is reported within seconds, by a recovered instance too; it is stopped, exec refuses it at once, start brings it back', async () => {
      const spec = newSpec();
      const info = await driver.create(spec);
      const pid = info.pid as number;
      expect(pid).toBeGreaterThan(1);
      const heard: VmExit[] = [];
      const heardAfterRestart: VmExit[] = [];
      const off = driver.watch((exit) => heard.push(exit));
      // A second instance on the same dir (a restarted agent): the VM is no child of it, it must poll.
      const second = await make(stateDir);
      const offSecond = second.watch((exit) => heardAfterRestart.push(exit));
      try {
        expect((await second.recover()).recovered).toContain(spec.id);
        const killedAt = Date.now();
        process.kill(pid, 'SIGKILL');
        const mine = (list: VmExit[]) => list.filter((e) => e.id === spec.id);
        expect(await eventually(() => mine(heard).length > 0 && mine(heardAfterRestart).length > 0, 5_000)).toBe(true);
        const [exit] = mine(heard);
        expect(exit?.reason).toMatch(/SIGKILL|killed/);
        expect(exit?.oom).toBeFalsy();
        expect(exit?.at.getTime()).toBeGreaterThanOrEqual(killedAt);
        expect(mine(heardAfterRestart)[0]?.reason).not.toBe('');
        await sleep(700); // one poll more: a death is reported once
        expect(mine(heard)).toHaveLength(1);
        expect(mine(heardAfterRestart)).toHaveLength(1);

        expect((await driver.status(spec.id)).state).toBe('stopped');
        expect((await driver.list()).find((v) => v.id === spec.id)?.state).toBe('stopped');
        const started = Date.now();
        const err = await errorOf(driver.exec(spec.id, { command: 'echo', args: ['ghost'] }));
        expect((err as AetheriumError).code).toBe('conflict');
        expect(err.message).toContain(exit?.reason ?? 'no exit heard');
        expect(Date.now() - started).toBeLessThan(2_000);

        expect((await driver.start(spec.id)).state).toBe('running');
        expect((await driver.exec(spec.id, { command: 'echo', args: ['back'] })).stdout).toBe('back\n');
      } finally {
        off();
        offSecond();
        await second.close();
        await driver.delete(spec.id);
      }
    });

    it('watch: a stop, a start and a delete asked for are not reported as deaths', async () => {
      const spec = newSpec();
      await driver.create(spec);
      const heard: VmExit[] = [];
      const off = driver.watch((exit) => heard.push(exit));
      try {
        await driver.stop(spec.id);
        await driver.start(spec.id);
        await driver.delete(spec.id);
        await sleep(1_500); // three polls of the watcher
        expect(heard.filter((e) => e.id === spec.id)).toEqual([]);
      } finally {
        off();
      }
    });

    if (options.impatient) {
      const makeImpatient = options.impatient;
      it('a boot that times out fails the create with the reason, and leaves no process and no files', async () => {
        const spec = newSpec();
        const impatient = await makeImpatient(stateDir);
        try {
          const err = await errorOf(impatient.create(spec));
          expect((err as AetheriumError).code).toBe('driver_failed');
          expect(err.message).toMatch(/within \d+ ms/);
          expect(hostProcessesMentioning(join(stateDir, spec.id))).toEqual([]);
          expect(existsSync(join(stateDir, spec.id))).toBe(false);
          expect((await driver.status(spec.id)).state).toBe('missing');
        } finally {
          await impatient.close();
        }
      });
    }

    it('a delete while the VM is being created fails the create saying so, and leaves nothing', async () => {
      const spec = newSpec();
      const creating = driver.create(spec);
      const deleting = driver.delete(spec.id);
      const err = await errorOf(creating);
      await deleting;
      expect((err as AetheriumError).code).toBe('conflict');
      expect(err.message).toMatch(/deleted while it was being created/);
      expect((await driver.status(spec.id)).state).toBe('missing');
      expect(existsSync(join(stateDir, spec.id))).toBe(false);
      expect(hostProcessesMentioning(join(stateDir, spec.id))).toEqual([]);
    });

    it('a delete as soon as the VM has a process on the host leaves nothing, whether or not the create had finished', async () => {
      const spec = newSpec();
      const vmDir = join(stateDir, spec.id);
      let settled = false;
      const creating = driver.create(spec).then(
        (info) => info.state,
        (err: unknown) => (err instanceof AetheriumError ? err.code : String(err)),
      );
      void creating.then(() => {
        settled = true;
      });
      expect(await eventually(() => settled || hostProcessesMentioning(vmDir).length > 0, 60_000)).toBe(true);
      await driver.delete(spec.id);
      expect(['running', 'conflict']).toContain(await creating);
      expect((await driver.status(spec.id)).state).toBe('missing');
      expect(existsSync(vmDir)).toBe(false);
      expect(hostProcessesMentioning(vmDir)).toEqual([]);
    });

    it('recover kills the processes of a VM it has no record of, and says so', async () => {
      const spec = newSpec();
      const info = await driver.create(spec);
      const vmDir = join(stateDir, spec.id);
      expect(hostProcessesMentioning(vmDir)).toContain(info.pid);
      // The record goes, the VM keeps running: what a crash in the middle of a delete leaves.
      await rm(vmDir, { recursive: true, force: true });
      const second = await make(stateDir);
      try {
        const report = await second.recover();
        const killed = report.killed.filter((k) => k.vm_id === spec.id);
        expect(killed.map((k) => k.pid)).toContain(info.pid);
        expect(killed[0]?.reason).toMatch(/not in the state dir/);
        // Gone with its process group, a child forked an instant before included (it may take the
        // kernel a moment to reap what was killed).
        expect(await eventually(() => hostProcessesMentioning(vmDir).length === 0, 5_000)).toBe(true);
        // The VMs it does know are left alone.
        expect(report.recovered).toContain(vm.id);
        expect(report.killed.some((k) => k.vm_id === vm.id)).toBe(false);
        expect((await second.status(vm.id)).state).toBe('running');
      } finally {
        await second.close();
      }
    });
  });
}
