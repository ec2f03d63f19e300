/**
 * Cutting a test host (see netns.ts) off the network and joining it again, from inside its own
 * namespace: its processes keep running, their packets go nowhere, no one is told.
 *
 * The first tool this machine has wins:
 * - `iptables`, then `nft`: DROP in and out on the host's link (connections hang, as across a real
 *   partition, until a timeout notices);
 * - `tc ... netem loss 100%`: every packet the host sends is dropped (nothing it says arrives, so
 *   no connection can carry anything either way);
 * - else `ip link set eth0 down`: the kernel drops every packet of the link and new connections
 *   fail at once with "network unreachable". Open connections hang as with the others.
 * A tool that is missing, or that the kernel cannot serve (no netem module), is skipped.
 */
import { execFileSync } from 'node:child_process';
import type { TestHost } from './netns.ts';

export type PartitionMethod = 'iptables' | 'nft' | 'netem' | 'link-down';

export interface Partition {
  method: PartitionMethod;
  /** Undoes the cut; idempotent. */
  heal(): void;
}

const TABLE = 'aetherium_partition';

interface Method {
  name: PartitionMethod;
  cut: string[][];
  heal: string[][];
}

function methods(device: string): Method[] {
  return [
    {
      name: 'iptables',
      cut: [
        ['iptables', '-I', 'INPUT', '-i', device, '-j', 'DROP'],
        ['iptables', '-I', 'OUTPUT', '-o', device, '-j', 'DROP'],
      ],
      heal: [
        ['iptables', '-D', 'INPUT', '-i', device, '-j', 'DROP'],
        ['iptables', '-D', 'OUTPUT', '-o', device, '-j', 'DROP'],
      ],
    },
    {
      name: 'nft',
      cut: [
        ['nft', 'add', 'table', 'inet', TABLE],
        ['nft', `add chain inet ${TABLE} in { type filter hook input priority -300 ; }`],
        ['nft', `add chain inet ${TABLE} out { type filter hook output priority -300 ; }`],
        ['nft', `add rule inet ${TABLE} in iifname "${device}" drop`],
        ['nft', `add rule inet ${TABLE} out oifname "${device}" drop`],
      ],
      heal: [['nft', 'delete', 'table', 'inet', TABLE]],
    },
    {
      name: 'netem',
      cut: [['tc', 'qdisc', 'add', 'dev', device, 'root', 'netem', 'loss', '100%']],
      heal: [['tc', 'qdisc', 'del', 'dev', device, 'root']],
    },
    {
      name: 'link-down',
      cut: [['ip', 'link', 'set', device, 'down']],
      heal: [['ip', 'link', 'set', device, 'up']],
    },
  ];
}

function inNamespace(host: TestHost, command: string[]): void {
  execFileSync('ip', ['netns', 'exec', host.namespace, ...command], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Cuts `host` off (its link `device`, eth0 in netns.ts) with the first method that works here. */
export function partitionHost(host: TestHost, device = 'eth0'): Partition {
  const failures: string[] = [];
  for (const method of methods(device)) {
    try {
      for (const command of method.cut) inNamespace(host, command);
    } catch (err) {
      failures.push(`${method.name}: ${(err as Error).message.split('\n')[0]}`);
      // Half a method applied (e.g. the nft table without its rules) must not stay behind.
      for (const command of method.heal) {
        try {
          inNamespace(host, command);
        } catch {
          // nothing to undo
        }
      }
      continue;
    }
    let healed = false;
    return {
      method: method.name,
      heal() {
        if (healed) return;
        healed = true;
        for (const command of method.heal) inNamespace(host, command);
      },
    };
  }
  throw new Error(`could not partition ${host.name}: ${failures.join('; ')}`);
}
