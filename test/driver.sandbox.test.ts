import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AetheriumError } from '../src/domain/index.ts';
import type { ExecRequest, VmExit, VmSpec } from '../src/ports/vm-driver.ts';
import type { CgroupSet } from '../src/adapters/vmm/cgroups.ts';
import { OomKillHistory, detectCgroupsV1, parseCgroupMounts, parseProcCgroup } from '../src/adapters/vmm/cgroups.ts';
import { buildBwrapArgs, toHostname } from '../src/adapters/vmm/sandbox/bwrap-args.ts';
import { detectDrivers } from '../src/adapters/vmm/detect.ts';
import { SandboxDriver } from '../src/adapters/vmm/sandbox/sandbox-driver.ts';
import { driverConformance, eventually, hostProcessesWithArg, sleepMarker } from './conformance/driver.suite.ts';

const detected = await detectDrivers();
const sandboxWorks = detected.available.includes('sandbox');
const cgroups = detectCgroupsV1();

// No silent skips: a host that cannot run the sandbox fails here, saying what to install.
it('this host can run the sandbox driver (bubblewrap installed, as .ci/run does)', () => {
  expect(
    sandboxWorks,
    `sandbox driver unavailable: ${detected.notes.sandbox ?? ''}; apt-get install -y bubblewrap`,
  ).toBe(true);
});

describe('sandbox driver (bubblewrap)', () => {
  driverConformance('sandbox', async (stateDir) => new SandboxDriver({ stateDir }), {
    impatient: async (stateDir) => new SandboxDriver({ stateDir, bootTimeoutMs: 1 }),
  });

  describe('isolation and limits', { timeout: 30_000 }, () => {
    let stateDir: string;
    let driver: SandboxDriver;
    const ids = new Set<string>();
    const spec = (name: string, overrides: Partial<VmSpec> = {}): VmSpec => {
      const s: VmSpec = { id: `sbx-${randomUUID()}`, name, vcpus: 1, memory_mb: 128, disk_gb: 1, ...overrides };
      ids.add(s.id);
      return s;
    };
    const alpha = spec('alpha-box');
    const bravo = spec('bravo-box', { memory_mb: 32, vcpus: 0.5 });
    const sh = (id: string, script: string, extra: Partial<ExecRequest> = {}) =>
      driver.exec(id, { command: 'sh', args: ['-c', script], ...extra });
    const groupsOf = (id: string): CgroupSet =>
      JSON.parse(readFileSync(join(stateDir, id, 'cgroups.json'), 'utf8')) as CgroupSet;
    const heard: VmExit[] = [];
    const deathOf = async (id: string): Promise<VmExit | undefined> => {
      await eventually(() => heard.some((e) => e.id === id), 5_000);
      return heard.find((e) => e.id === id);
    };

    beforeAll(async () => {
      stateDir = await mkdtemp(join(tmpdir(), 'aetherium-sandbox-'));
      driver = new SandboxDriver({ stateDir });
      driver.watch((exit) => heard.push(exit));
      await Promise.all([driver.create(alpha), driver.create(bravo)]);
    }, 60_000);

    afterAll(async () => {
      for (const id of ids) await driver.delete(id).catch(() => {});
      await driver.close();
      await rm(stateDir, { recursive: true, force: true });
    }, 60_000);

    it('is detected on this host and says it is not a VM', () => {
      expect(detected.available).toContain('sandbox');
      expect(detected.available).not.toContain('process');
      expect(driver.info.isolation).toBe('namespaces');
      expect(driver.info.warnings.join(' ')).toMatch(/Not a VM/);
    });

    it('has its own pid namespace: only its own processes are visible', async () => {
      const result = await sh(alpha.id, 'ps -e -o pid=,comm=');
      const rows = result.stdout
        .trim()
        .split('\n')
        .map((line) => line.trim().split(/\s+/));
      expect(rows.find(([pid]) => pid === '1')?.[1]).toBe('bwrap');
      expect(new Set(rows.map(([, comm]) => comm))).toEqual(new Set(['bwrap', 'sleep', 'sh', 'ps']));
      const pids = (await sh(alpha.id, 'ls /proc')).stdout.split('\n').filter((e) => /^\d+$/.test(e));
      expect(pids.length).toBeLessThanOrEqual(6); // bwrap, sleep, sh, ls (+ nsenter's short-lived helpers)
      expect(readdirSync('/proc').filter((e) => /^\d+$/.test(e)).length).toBeGreaterThan(pids.length);
    });

    it('has the VM name as hostname', async () => {
      expect((await driver.exec(alpha.id, { command: 'hostname' })).stdout).toBe('alpha-box\n');
      expect((await driver.exec(bravo.id, { command: 'uname', args: ['-n'] })).stdout).toBe('bravo-box\n');
    });

    it('has no network but loopback', async () => {
      const devices = (await driver.exec(alpha.id, { command: 'cat', args: ['/proc/net/dev'] })).stdout;
      const names = devices
        .split('\n')
        .slice(2)
        .filter(Boolean)
        .map((line) => line.split(':')[0]?.trim());
      expect(names).toEqual(['lo']);
      const outside = await driver.exec(alpha.id, {
        command: 'bash',
        args: ['-c', 'exec 3<>/dev/tcp/1.1.1.1/80'],
        timeout_ms: 10_000,
      });
      expect(outside.exit_code).not.toBe(0);
      expect(outside.stderr).toMatch(/unreachable/i);
      const loopback = await driver.exec(alpha.id, {
        command: 'bash',
        args: ['-c', 'exec 3<>/dev/tcp/127.0.0.1/9'],
        timeout_ms: 10_000,
      });
      expect(loopback.stderr).toMatch(/refused/i); // loopback is up, nothing listens there
    });

    it('keeps each VM in its own root: files of one are not visible in another, nor is the host', async () => {
      expect((await sh(alpha.id, 'echo secret > /root/secret.txt && echo tmp > /tmp/alpha.txt')).exit_code).toBe(0);
      expect((await sh(alpha.id, 'cat /root/secret.txt /tmp/alpha.txt')).stdout).toBe('secret\ntmp\n');
      expect((await sh(bravo.id, 'test -e /root/secret.txt || test -e /tmp/alpha.txt')).exit_code).toBe(1);
      expect(existsSync(join(stateDir, alpha.id, 'root', 'root', 'secret.txt'))).toBe(true);
      // The host's own directories are not there, and the shared ones are read-only.
      expect(
        (await sh(alpha.id, `test -e ${JSON.stringify(stateDir)} || test -e /work || test -e /etc/shadow`)).exit_code,
      ).toBe(1);
      const usr = await sh(alpha.id, 'touch /usr/aetherium-write-test');
      expect(usr.exit_code).not.toBe(0);
      expect(existsSync('/usr/aetherium-write-test')).toBe(false);
    });

    it('runs commands without capabilities', async () => {
      expect((await sh(alpha.id, 'grep CapEff /proc/self/status')).stdout).toBe('CapEff:\t0000000000000000\n');
      expect((await sh(alpha.id, 'grep NoNewPrivs /proc/self/status')).stdout).toBe('NoNewPrivs:\t1\n');
      expect((await sh(alpha.id, 'mount -t tmpfs none /mnt')).exit_code).not.toBe(0);
      // Nothing over the sandbox's own namespaces either (the command runs inside its user namespace).
      expect((await sh(alpha.id, 'hostname evil')).exit_code).not.toBe(0);
      expect((await driver.exec(alpha.id, { command: 'hostname' })).stdout).toBe('alpha-box\n');
      expect((await sh(alpha.id, 'ip link set lo down')).exit_code).not.toBe(0);
      const init = (await driver.status(alpha.id)).pid as number;
      const inside = (await driver.exec(alpha.id, { command: 'readlink', args: ['/proc/self/ns/user'] })).stdout.trim();
      expect(inside).toBe(readlinkSync(`/proc/${init}/ns/user`));
    });

    it('finds writable cgroup v1 memory, cpu and pids controllers', () => {
      expect(
        Object.keys(cgroups.parents).sort(),
        'the limit tests below need cgroup v1 controllers this agent can write',
      ).toEqual(expect.arrayContaining(['cpu', 'memory', 'pids']));
    });

    it('enforces memory_mb: a process allocating more is killed', async () => {
      const groups = groupsOf(bravo.id);
      expect(readFileSync(join(groups.memory as string, 'memory.limit_in_bytes'), 'utf8').trim()).toBe(
        String(32 * 1024 * 1024),
      );
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
      const small = await sh(bravo.id, 'x=$(head -c 4000000 /dev/zero | tr "\\000" a); echo survived ${#x}');
      expect(small.stdout).toBe('survived 4000000\n');
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
      const big = await sh(bravo.id, 'x=$(head -c 200000000 /dev/zero | tr "\\000" a); echo survived ${#x}');
      expect(big.stdout).not.toMatch(/survived/);
      expect(big.exit_code).toBe(137);
      // The VM is still usable afterwards, and a command the OOM killer took is no death of the VM.
      expect((await driver.exec(bravo.id, { command: 'echo', args: ['ok'] })).stdout).toBe('ok\n');
      await new Promise((r) => setTimeout(r, 1_000));
      expect(heard.filter((e) => e.id === bravo.id)).toEqual([]);
    });

    it("an init the OOM killer takes is reported as out of memory, with the VM's limit", async () => {
      const vm = spec('oom-init', { memory_mb: 32 });
      await driver.create(vm);
      // The kernel picks the process with the highest score; the init is made that one (raising
      // one's own score needs no privilege), as when a VM's memory runs out under its init.
      const raised = await sh(vm.id, 'echo 1000 > /proc/2/oom_score_adj && cat /proc/2/oom_score_adj');
      expect(raised.stdout).toBe('1000\n');
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a shell expansion, not a template
      await sh(vm.id, 'x=$(head -c 200000000 /dev/zero | tr "\\000" a); echo survived ${#x}');
      const exit = await deathOf(vm.id);
      expect(exit).toMatchObject({ oom: true, signal: 'SIGKILL' });
      expect(exit?.reason).toBe("out of memory: killed by the kernel's OOM killer (limit 32 MB)");
      expect((await driver.status(vm.id)).state).toBe('stopped');
      await driver.delete(vm.id);
    });

    it('killing the init from inside the VM (it is pid 2 there; pid 1, bwrap, ignores signals from inside) is noticed', async () => {
      const vm = spec('suicidal');
      await driver.create(vm);
      const ps = await sh(vm.id, 'cat /proc/1/comm /proc/2/comm');
      expect(ps.stdout).toBe('bwrap\nsleep\n');
      const startedAt = Date.now();
      await sh(vm.id, 'kill -9 2; sleep 5');
      const exit = await deathOf(vm.id);
      expect(exit).toMatchObject({ signal: 'SIGKILL', exit_code: null });
      expect(exit?.reason).toBe("the VM's init exited with signal SIGKILL");
      expect(exit?.oom).toBeFalsy();
      expect(Date.now() - startedAt).toBeLessThan(4_000); // the command in it was killed with it
      expect((await driver.status(vm.id)).state).toBe('stopped');
      await driver.delete(vm.id);
    });

    it('sets pids.max and the CPU quota from vcpus', () => {
      const groups = groupsOf(bravo.id);
      expect(readFileSync(join(groups.pids as string, 'pids.max'), 'utf8').trim()).toBe('1024');
      const period = Number(readFileSync(join(groups.cpu as string, 'cpu.cfs_period_us'), 'utf8'));
      expect(Number(readFileSync(join(groups.cpu as string, 'cpu.cfs_quota_us'), 'utf8'))).toBe(
        Math.round(0.5 * period),
      );
    });

    it('a timeout or an abort also kills what the command detached with setsid', async () => {
      const [m1, m2] = [sleepMarker(), sleepMarker()];
      const timedOut = await sh(alpha.id, `setsid sleep 600 ${m1} </dev/null >/dev/null 2>&1 & sleep 600`, {
        timeout_ms: 500,
      });
      expect(timedOut.timed_out).toBe(true);
      expect(await eventually(() => hostProcessesWithArg(m1).length === 0, 2_000)).toBe(true);

      const controller = new AbortController();
      const pending = sh(alpha.id, `setsid sleep 600 ${m2} </dev/null >/dev/null 2>&1 & sleep 600`, {
        signal: controller.signal,
      });
      expect(await eventually(() => hostProcessesWithArg(m2).length === 1, 5_000)).toBe(true);
      controller.abort();
      await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
      expect(await eventually(() => hostProcessesWithArg(m2).length === 0, 2_000)).toBe(true);
    });

    it("stop kills every process of the VM, even ones that left the command's session", async () => {
      const vm = spec('stopper');
      await driver.create(vm);
      const groups = groupsOf(vm.id);
      for (const dir of Object.values(groups)) expect(existsSync(dir)).toBe(true);
      const marker = sleepMarker();
      const result = await sh(vm.id, `setsid sleep 600 ${marker} >/dev/null 2>&1 < /dev/null & echo started`);
      expect(result.stdout).toBe('started\n');
      // The daemon outlives the exec, inside the VM.
      expect(await eventually(() => hostProcessesWithArg(marker).length === 1, 5_000)).toBe(true);
      const init = (await driver.status(vm.id)).pid as number;
      await driver.stop(vm.id);
      expect(hostProcessesWithArg(marker)).toEqual([]);
      expect(existsSync(`/proc/${init}/cmdline`) && readFileSync(`/proc/${init}/cmdline`, 'utf8') !== '').toBe(false);
      await driver.delete(vm.id);
      expect(Object.keys(groups).length).toBe(Object.keys(cgroups.parents).length);
      for (const dir of Object.values(groups)) expect(existsSync(dir)).toBe(false);
    });

    it('recover reports a VM whose init died as lost and removes its directory and cgroups', async () => {
      const vm = spec('crashing');
      await driver.create(vm);
      const groups = groupsOf(vm.id);
      const init = (await driver.status(vm.id)).pid as number;
      process.kill(init, 'SIGKILL'); // as if the host had rebooted under the agent
      expect(
        await eventually(
          () => !existsSync(`/proc/${init}`) || readFileSync(`/proc/${init}/cmdline`, 'utf8') === '',
          5_000,
        ),
      ).toBe(true);
      expect((await driver.status(vm.id)).state).toBe('stopped');

      const restarted = new SandboxDriver({ stateDir });
      const report = await restarted.recover();
      await restarted.close();
      expect(report.lost).toContain(vm.id);
      expect(report.recovered).toContain(alpha.id);
      expect(report.recovered).not.toContain(vm.id);
      expect(existsSync(join(stateDir, vm.id))).toBe(false);
      for (const dir of Object.values(groups)) expect(existsSync(dir)).toBe(false);
    });

    it('a create that fails cleans up everything it allocated', async () => {
      const vm = spec('doomed');
      const impatient = new SandboxDriver({ stateDir, bootTimeoutMs: 1 });
      let error: unknown;
      try {
        await impatient.create(vm);
      } catch (err) {
        error = err;
      }
      await impatient.close();
      expect(error).toBeInstanceOf(AetheriumError);
      expect((error as AetheriumError).code).toBe('driver_failed');
      expect(existsSync(join(stateDir, vm.id))).toBe(false);
      const rootDir = join(stateDir, vm.id, 'root');
      expect(await eventually(() => hostProcessesWithArg(rootDir).length === 0, 2_000)).toBe(true);
      for (const parent of Object.values(cgroups.parents))
        expect(readdirSync(parent).filter((name) => name.endsWith(vm.id))).toEqual([]);
    });
  });
});

describe('sandbox helpers', () => {
  it('counts an OOM kill against a death only when it came within the lag before it', async () => {
    const group = await mkdtemp(join(tmpdir(), 'aetherium-oom-'));
    const count = (n: number) =>
      writeFileSync(join(group, 'memory.oom_control'), `oom_kill_disable 0\nunder_oom 0\noom_kill ${n}\n`);
    try {
      count(0);
      const history = new OomKillHistory(group, 2_000);
      expect(history.rose(1_000)).toBe(false);
      count(1); // the OOM killer takes the init; a poll sees the count before the init is gone
      history.sample(1_100);
      expect(history.rose(1_200)).toBe(true);
      history.sample(10_000); // long after: that kill is old news
      history.sample(12_500);
      expect(history.rose(12_600)).toBe(false);
      count(2);
      expect(history.rose(12_700)).toBe(true);
      expect(new OomKillHistory(join(group, 'missing')).rose()).toBe(false);
    } finally {
      await rm(group, { recursive: true, force: true });
    }
  });

  it('builds a bwrap command line that unshares everything, drops capabilities and outlives the agent', () => {
    const args = buildBwrapArgs({
      rootDir: '/state/vm/root',
      hostname: 'h',
      perms: true,
      layout: {
        entries: [
          { name: 'bin', kind: 'symlink', target: 'usr/bin' },
          { name: 'lib', kind: 'dir' },
        ],
      },
    });
    expect(args).toContain('--unshare-all');
    expect(args).not.toContain('--die-with-parent');
    expect(args).not.toContain('--share-net');
    expect(args.join(' ')).toContain('--bind /state/vm/root / --ro-bind /usr /usr --ro-bind /lib /lib');
    expect(args.join(' ')).toContain('--cap-drop ALL');
    expect(args.join(' ')).toContain('--hostname h');
  });

  it('turns a VM name into a valid hostname', () => {
    expect(toHostname('alpha-box')).toBe('alpha-box');
    expect(toHostname('my vm_1!')).toBe('my-vm-1');
    expect(toHostname('---')).toBe('vm');
    expect(toHostname('x'.repeat(100))).toHaveLength(63);
  });

  it("finds the agent's own cgroup v1 paths and where the hierarchies are mounted", () => {
    const own = parseProcCgroup('9:name=systemd:/\n8:pids:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/slice\n0::/\n');
    expect(own.get('memory')).toBe('/process_api/abc');
    expect(own.get('cpu')).toBe('/slice');
    expect(own.get('pids')).toBe('/');
    const mounts = parseCgroupMounts(
      '36 25 0:31 / /sys/fs/cgroup/memory rw,relatime shared:14 - cgroup cgroup rw,memory\n37 25 0:32 /outer /sys/fs/cgroup/cpu\\040x rw - cgroup cgroup rw,cpu,cpuacct\n38 25 0:33 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n',
    );
    expect(mounts.get('memory')).toEqual({ root: '/', mountPoint: '/sys/fs/cgroup/memory' });
    expect(mounts.get('cpu')).toEqual({ root: '/outer', mountPoint: '/sys/fs/cgroup/cpu x' });
    expect(mounts.has('pids')).toBe(false);
  });
});
