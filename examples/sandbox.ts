/**
 * A sandbox in a few lines: create a VM, stream a command's output as it runs, and let `await using`
 * delete the VM at the end, even when something in between throws.
 *
 *   npm start                                # in another terminal: the dev system on localhost:8080
 *   node --import tsx examples/sandbox.ts    # finds it and its admin key by itself
 *
 * Elsewhere: AETHERIUM_API and AETHERIUM_TOKEN, or a context (`aetherium context add …`).
 */
import { Aetherium, ApiError, TimeoutError } from 'aetherium/sdk';

async function main(): Promise<void> {
  const client = new Aetherium();
  console.error(`control plane: ${client.apiUrl}`);

  await using vm = await client.vms.create(
    { name: `sandbox-${process.pid}`, vcpus: 1, memory_mb: 256 },
    {
      waitUntil: 'running',
      timeoutMs: 120_000,
      onProgress: (p) =>
        console.error(`  ${p.phase}${p.phase === 'pending' ? `: ${p.reason}` : ''} (${p.elapsedMs} ms)`),
    },
  );
  console.error(`VM ${vm.name} runs on ${vm.workerId} with the ${vm.driver} driver`);

  const result = await vm.exec('sh', {
    args: ['-c', 'for i in 1 2 3; do echo "step $i"; sleep 0.3; done; echo "from stderr" >&2; uname -sr'],
    onStdout: (data) => process.stdout.write(data),
    onStderr: (data) => process.stderr.write(data),
    timeoutMs: 30_000, // the command's own timeout: the worker kills it and all it started
  });
  console.error(`exit code ${result.exitCode}${result.timedOut ? ' (timed out)' : ''}, task ${result.taskId}`);
  // Leaving the scope deletes the VM (and waits until it is gone).
}

main().catch((err: unknown) => {
  if (err instanceof TimeoutError) console.error(`timed out (${err.kind}): ${err.message}`);
  else if (err instanceof ApiError) console.error(`${err.code} (${err.status}): ${err.message}`);
  else console.error(err);
  process.exitCode = 1;
});
