import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config/load.ts';

function file(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'aetherium-config-')), 'config.yaml');
  writeFileSync(path, text);
  return path;
}

describe('config', () => {
  it('fills every default without a file', () => {
    const config = loadConfig({ env: {} });
    expect(config.api_gateway.port).toBe(8080);
    expect(config.worker.heartbeat_interval).toBe(10_000);
    expect(config.worker.ttl).toBe(30_000);
    expect(config.worker.resources.max_vms).toBe(100);
    expect(config.discovery.consul.service_name).toBe('aetherium-worker');
    expect(config.discovery.consul.deregister_critical_service_after).toBe(60_000);
    expect(config.store.kind).toBe('pglite');
  });

  it('reads config.example.yaml, which documents every section', () => {
    const config = loadConfig({ path: 'config.example.yaml', env: {} });
    expect(config).toEqual(loadConfig({ env: {} }));
  });

  it('applies environment overrides over the file', () => {
    const path = file('api_gateway:\n  port: 9000\nworker:\n  zone: us-west-1a\n');
    const config = loadConfig({
      path,
      env: {
        AETHERIUM_API_GATEWAY__PORT: '9090',
        AETHERIUM_WORKER__LABELS__TIER: 'gpu',
        WORKER_ID: 'worker-01',
        DATABASE_URL: 'postgres://x@h/db',
      },
    });
    expect(config.api_gateway.port).toBe(9090);
    expect(config.worker.zone).toBe('us-west-1a');
    expect(config.worker.labels).toEqual({ tier: 'gpu' });
    expect(config.worker.id).toBe('worker-01');
    expect(config.store.postgres.url).toBe('postgres://x@h/db');
  });

  it('names the key and the problem when the file is wrong', () => {
    const path = file('api_gateway:\n  port: "eighty"\nworker:\n  heartbeat_interval: 10 seconds\n');
    expect(() => loadConfig({ path, env: {} })).toThrow(ConfigError);
    try {
      loadConfig({ path, env: {} });
    } catch (err) {
      expect((err as Error).message).toContain(path);
      expect((err as Error).message).toMatch(/api_gateway\.port: .*number/);
      expect((err as Error).message).toMatch(/worker\.heartbeat_interval: expected a duration/);
    }
  });

  it('refuses a TTL that is not larger than the heartbeat interval', () => {
    expect(() =>
      loadConfig({ env: { AETHERIUM_WORKER__HEARTBEAT_INTERVAL: '10s', AETHERIUM_WORKER__TTL: '10s' } }),
    ).toThrow(/worker\.ttl: must be larger than worker\.heartbeat_interval/);
  });

  it('rejects unknown enum values, a missing file and a non-mapping file', () => {
    expect(() => loadConfig({ env: { AETHERIUM_DISCOVERY__PROVIDER: 'zookeeper' } })).toThrow(/discovery\.provider/);
    expect(() => loadConfig({ path: '/nonexistent/aetherium.yaml', env: {} })).toThrow(/does not exist/);
    expect(() => loadConfig({ path: file('- just\n- a list\n'), env: {} })).toThrow(/must hold a mapping/);
    expect(() => loadConfig({ path: file('store: [unclosed\n'), env: {} })).toThrow(/not valid YAML/);
  });
});
