/** Every command run in a VM is recorded, whatever its exit code. */
export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
  /** True when the command was killed because its timeout ran out. */
  timed_out?: boolean;
}

export interface Execution extends ExecResult {
  id: string;
  vm_id: string;
  task_id: string | null;
  command: string;
  args: string[];
  env: Record<string, string>;
  started_at: Date;
  completed_at: Date;
  duration_ms: number;
}
