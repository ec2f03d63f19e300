/**
 * What the driver remembers about a running sandbox (`init.json` in the VM dir), and how it tells
 * that the process behind a recorded pid is still that sandbox and not a stranger that got the pid.
 */
import { basename } from 'node:path';
import { isProcessAlive, readCmdline } from '../procfs.ts';

export interface InitRecord {
  /** Host pid of the sandbox's pid 1 (bubblewrap's init, which reaps orphans); its namespaces are the VM. */
  pid: number;
  /** /proc/<pid>/stat start time of that process: with the pid it cannot be confused with another. */
  start_time: string;
  /** Host pid of the outer bwrap that waits for pid 1 (informational). */
  monitor_pid: number;
  started_at: string;
  boot_ms: number;
}

/** True when `record.pid` is alive, started when recorded, and is a bwrap whose command line binds `rootDir`. */
export function isOurInit(record: InitRecord, rootDir: string): boolean {
  if (!Number.isInteger(record.pid) || record.pid <= 1) return false;
  if (!isProcessAlive(record.pid, record.start_time)) return false;
  const argv = readCmdline(record.pid);
  if (!argv || argv.length === 0) return false;
  return basename(argv[0] ?? '') === 'bwrap' && argv.includes(rootDir);
}
