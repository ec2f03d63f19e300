/**
 * Separate network hosts on one machine: a bridge in the root namespace and one network namespace
 * per test host, joined to the bridge by a veth pair. Engines listen on the bridge address; a
 * process started with `exec()` lives in its host's namespace and reaches them only across it.
 * Addresses are private to this machine and exist only while the test runs.
 */
import { execFileSync, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

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

export function createTestNetwork(count: number, subnet = 213): TestNetwork {
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
