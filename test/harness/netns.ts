/**
 * Separate network hosts on one machine: a bridge in the root namespace and one network namespace
 * per test host, joined to the bridge by a veth pair. Engines listen on the bridge address; a
 * process started with `exec()` lives in its host's namespace and reaches them only across it.
 * Addresses are private to this machine and exist only while the test runs.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface TestHost {
  name: string;
  namespace: string;
  address: string;
  /** Spawns a command inside this host's network namespace. */
  spawn(command: string, args: string[], options?: SpawnOptions): ChildProcess;
}

export interface TestNetwork {
  /** The root namespace's address on the bridge: where the hosts reach the engines. */
  gateway: string;
  hosts: TestHost[];
  destroy(): void;
}

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

const live = new Set<() => void>();
let hooked = false;

/**
 * Bridges and namespaces a killed test run left behind. One with our subnet would take the
 * route to it, and the hosts of this run would reach nothing (connections just time out).
 */
function removeLeftovers(): void {
  const alive = (tag: string) => {
    const pid = Number.parseInt(tag, 36);
    for (let p = pid; p < 4_194_304; p += 10_000) {
      try {
        process.kill(p, 0);
        if (p === process.pid || readCmdline(p).includes('vitest')) return true;
      } catch {
        /* no such process */
      }
    }
    return false;
  };
  const listing = (args: string[]) => {
    try {
      return execFileSync('ip', args, { encoding: 'utf8' });
    } catch {
      return '';
    }
  };
  for (const ns of listing(['netns', 'list']).matchAll(/^aeh([0-9a-z]+)-\d+/gm)) {
    if (!alive(ns[1] as string)) execFileSync('ip', ['netns', 'del', ns[0]], { stdio: 'ignore' });
  }
  for (const bridge of listing(['-o', 'link', 'show']).matchAll(/\baeb([0-9a-z]+)\b/g)) {
    if (!alive(bridge[1] as string)) {
      try {
        ip('link', 'del', bridge[0]);
      } catch {
        /* gone meanwhile */
      }
    }
  }
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
}

/**
 * A /24 no other live test network uses: two test files that build networks at once (they run in
 * parallel worker processes) must not share a subnet, or one takes the other's route.
 */
function freeSubnet(attempt: number): number {
  let used = '';
  try {
    used = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  } catch {
    /* no listing: take the first candidate */
  }
  const start = 100 + ((process.pid + attempt * 37) % 100);
  for (let i = 0; i < 150; i++) {
    const candidate = 100 + ((start - 100 + i) % 150);
    if (!used.includes(` 10.${candidate}.0.`)) return candidate;
  }
  throw new Error('no free 10.x.0.0/24 subnet for a test network');
}

export function createTestNetwork(count: number, subnet?: number, attempt = 0): TestNetwork {
  if (attempt === 0) removeLeftovers();
  subnet ??= freeSubnet(attempt);
  const tag = (process.pid % 10_000).toString(36);
  const bridge = `aeb${tag}`;
  const gateway = `10.${subnet}.0.1`;
  const hosts: TestHost[] = [];
  const namespaces: string[] = [];
  const destroy = () => {
    for (const ns of namespaces) {
      try {
        ip('netns', 'del', ns);
      } catch {
        /* already gone */
      }
    }
    try {
      ip('link', 'del', bridge);
    } catch {
      /* already gone */
    }
    live.delete(destroy);
  };
  try {
    ip('link', 'add', bridge, 'type', 'bridge');
    ip('addr', 'add', `${gateway}/24`, 'dev', bridge);
    // Another run may have taken the same subnet between our look and our claim: then step aside.
    const holders = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' })
      .split('\n')
      .filter((line) => line.includes(` 10.${subnet}.0.`));
    if (holders.length > 1) {
      destroy();
      if (attempt >= 5) throw new Error(`subnet 10.${subnet}.0.0/24 is taken by another test network`);
      return createTestNetwork(count, undefined, attempt + 1);
    }
    ip('link', 'set', bridge, 'up');
    for (let i = 1; i <= count; i++) {
      const namespace = `aeh${tag}-${i}`;
      const veth = `aev${tag}-${i}`;
      const address = `10.${subnet}.0.${10 + i}`;
      ip('netns', 'add', namespace);
      namespaces.push(namespace);
      ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', namespace);
      ip('link', 'set', veth, 'master', bridge, 'up');
      ip('-n', namespace, 'addr', 'add', `${address}/24`, 'dev', 'eth0');
      ip('-n', namespace, 'link', 'set', 'eth0', 'up');
      ip('-n', namespace, 'link', 'set', 'lo', 'up');
      hosts.push({
        name: `host-${i}`,
        namespace,
        address,
        spawn: (command, args, options = {}) => spawn('ip', ['netns', 'exec', namespace, command, ...args], options),
      });
    }
  } catch (err) {
    destroy();
    throw new Error(`could not build the test network (needs root and iproute2): ${(err as Error).message}`);
  }
  live.add(destroy);
  if (!hooked) {
    hooked = true;
    process.once('exit', () => {
      for (const d of [...live]) d();
    });
  }
  return { gateway, hosts, destroy };
}
