/**
 * The command line that runs one command inside a running sandbox: nsenter joins the namespaces of
 * the sandbox's pid 1 and its root, then setpriv drops every capability (bounding, inheritable and
 * ambient sets) and sets no_new_privs before the command is exec'd. nsenter forks once to enter the
 * pid namespace; the host-side nsenter waits and passes the exit status (or death signal) on.
 */
export const SETPRIV_ARGS = ['--bounding-set=-all', '--inh-caps=-all', '--ambient-caps=-all', '--no-new-privs'];

export interface ExecArgsInput {
  /** Host pid of the sandbox's pid 1. */
  pid: number;
  /** Absolute path inside the sandbox. */
  cwd: string;
  /** setpriv's path (resolved inside the sandbox, where the host's /usr is visible). */
  setpriv: string;
  /** nsenter knows --wdns (util-linux >= 2.38); otherwise a shell inside changes directory. */
  wdns: boolean;
  enterCgroupNs: boolean;
  /**
   * The sandbox has its own user namespace (bwrap --unshare-all makes one, mapping root to root).
   * The command must enter it: a process left in the parent namespace with euid 0 owns that
   * namespace and so holds every capability over the sandbox's namespaces, even with empty
   * capability sets.
   */
  enterUserNs: boolean;
  command: string;
  args: readonly string[];
}

/** Arguments for nsenter (not including nsenter itself). */
export function buildNsenterArgs(input: ExecArgsInput): string[] {
  const out = ['--target', String(input.pid)];
  if (input.enterUserNs) out.push('--user', '--preserve-credentials');
  out.push('--mount', '--uts', '--ipc', '--net', '--pid');
  if (input.enterCgroupNs) out.push('--cgroup');
  // --wd=<dir> would be opened on the host before entering; --wdns resolves it inside the sandbox.
  out.push('--root');
  if (input.wdns) out.push(`--wdns=${input.cwd}`);
  out.push('--', input.setpriv, ...SETPRIV_ARGS, '--');
  if (!input.wdns) out.push('/bin/sh', '-c', 'cd -- "$1" || exit 126; shift; exec "$@"', 'aetherium-cd', input.cwd);
  out.push(input.command, ...input.args);
  return out;
}
