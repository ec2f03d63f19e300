/** The machine the numbers were taken on, printed above them. */
import os from 'node:os';

export interface Machine {
  cpu: string;
  cpus: number;
  memory_gib: number;
  node: string;
  kernel: string;
  /** The 1-minute load average when the suite started: how busy the machine already was. */
  load_average_1m: number;
}

export function machine(): Machine {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cpus: cpus.length,
    memory_gib: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    kernel: `${os.type()} ${os.release()} ${os.arch()}`,
    load_average_1m: Math.round(os.loadavg()[0]! * 100) / 100,
  };
}

export function describeMachine(m: Machine): string {
  return [
    `machine: ${m.cpus} × ${m.cpu}, ${m.memory_gib} GiB memory`,
    `         node ${m.node}, ${m.kernel}, load average ${m.load_average_1m} at the start`,
  ].join('\n');
}
