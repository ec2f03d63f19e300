/**
 * Why a QEMU VM ended, in words, from what the driver saw: the QMP events (SHUTDOWN says whether
 * the guest or the host ended it), and the guest's console since the boot (a kernel panic, and
 * whether the kernel ran out of memory first). QEMU is not a child of the worker (-daemonize), so
 * its exit status is never known; a SIGKILL leaves no event at all.
 */
import type { ExitDetails } from '../vm-watch.ts';
import type { QmpEvent } from './qmp.ts';

export interface QemuExitInput {
  pid: number;
  events: readonly QmpEvent[];
  /** The console written since the VM was booted. */
  console: string;
  memoryMb: number;
}

const PANIC = /Kernel panic - not syncing: ([^\r\n]*)/g;
/** What the guest kernel prints when it runs out of memory (the OOM killer, or a panic about it). */
const OUT_OF_MEMORY = /Out of memory|invoked oom-killer|oom-kill:|System is deadlocked on memory/;

const SHUTDOWN_WORDS: Record<string, string> = {
  'guest-shutdown': 'the guest powered itself off',
  'guest-reset': 'the guest reset itself (QEMU runs with -no-reboot, so a reset ends the VM)',
  'guest-panic': 'the guest kernel panicked',
  'host-signal': 'QEMU was stopped by a signal sent to it on the host',
  'host-qmp-quit': 'QEMU was told to quit over QMP by someone other than this driver',
  'host-qmp-system-reset': 'the VM was reset over QMP by someone other than this driver',
  'host-ui': 'QEMU was closed from its user interface',
};

export function qemuExitWords(input: QemuExitInput): ExitDetails {
  const panics = [...input.console.matchAll(PANIC)];
  const panic = panics.at(-1);
  if (panic) {
    const message = (panic[1] ?? '').trim();
    // The kernel's OOM report comes in the lines just before its panic when memory was the cause.
    const before = input.console.slice(Math.max(0, (panic.index ?? 0) - 4_000), panic.index);
    if (OUT_OF_MEMORY.test(message) || OUT_OF_MEMORY.test(before))
      return {
        reason: `out of memory: the guest kernel ran out of its ${input.memoryMb} MB and panicked (${message})`,
        exit_code: null,
        signal: null,
        oom: true,
      };
    return { reason: `the guest kernel panicked: ${message}`, exit_code: null, signal: null };
  }
  if (input.events.some((e) => e.event === 'GUEST_PANICKED'))
    return { reason: 'the guest kernel panicked (QEMU reported GUEST_PANICKED)', exit_code: null, signal: null };
  const shutdown = input.events.findLast((e) => e.event === 'SHUTDOWN');
  if (shutdown) {
    const why = typeof shutdown.data?.reason === 'string' ? shutdown.data.reason : 'unknown';
    return { reason: SHUTDOWN_WORDS[why] ?? `QEMU shut the VM down (${why})`, exit_code: null, signal: null };
  }
  return {
    reason: `QEMU (host pid ${input.pid}) is gone without a shutdown event: it was killed (SIGKILL) or crashed`,
    exit_code: null,
    signal: null,
  };
}
