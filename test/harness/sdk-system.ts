/**
 * An embedded system (startTestSystem) listening on a loopback port, for the SDK's tests: the SDK
 * talks to it over real HTTP and WebSockets, with authentication on.
 */
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { Aetherium, ApiError, type ClientOptions } from '../../src/sdk/index.ts';
import { startTestSystem, type TestSystem, type TestSystemOptions } from './dev-system.ts';

export interface SdkTestSystem extends TestSystem {
  /** http://127.0.0.1:<port> */
  url: string;
  /** A client of this system with the admin key (or `token`), reading no environment or configuration file. */
  client(token?: string | null, options?: ClientOptions): Aetherium;
}

export async function startSdkSystem(
  overrides: Record<string, unknown> = {},
  options: TestSystemOptions = {},
): Promise<SdkTestSystem> {
  const t = await startTestSystem(overrides, options);
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = t.app.server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    ...t,
    url,
    client: (token = t.adminKey, more = {}) =>
      new Aetherium({
        apiUrl: url,
        env: {},
        configPath: join(t.stateDir, 'no-client-config.yaml'),
        ...(token === null ? {} : { token }),
        ...more,
      }),
  };
}

/** The error a promise rejects with (failing the test if it resolves). */
export async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected a failure, got an answer');
}
