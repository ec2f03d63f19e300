/**
 * `aetherium worker` opens no port, so the API listener flags are refused (exit 2, with the
 * reason) rather than accepted and ignored; `server` and `dev` keep them. Nothing is started:
 * the refusal comes before the config is even read.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from './harness/processes.ts';

describe('aetherium worker refuses the flags it does not use', () => {
  it.each([
    [['-p', '1'], '--port', /the API port is set on `aetherium server` or `aetherium dev`/],
    [['--port=9000'], '--port', /it opens no port/],
    [['--host', 'x'], '--host', /worker\.address/],
  ])('worker %j exits 2 and says why', async (args, flag, hint) => {
    const result = await runCli(['worker', ...args]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`error: aetherium worker does not take ${flag}: it opens no port`);
    expect(result.stderr).toMatch(hint);
    expect(result.stdout).toBe('');
  });

  it('does not list them in its help; server and dev still take them', async () => {
    const worker = await runCli(['worker', '--help']);
    expect(worker.code).toBe(0);
    expect(worker.stdout).not.toMatch(/--port|--host/);
    for (const command of ['server', 'dev']) {
      const help = await runCli([command, '--help']);
      expect(help.code).toBe(0);
      expect(help.stdout).toContain('-p, --port <port>');
      expect(help.stdout).toContain('--host <host>');
    }
  });
});
