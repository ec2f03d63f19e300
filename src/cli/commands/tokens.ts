/** `aetherium tokens …` (API keys) and `aetherium audit`. */
import type { Command } from 'commander';
import type { ApiClient } from '../api-client.ts';
import { printJson, printTable } from '../format.ts';
import type { GlobalOptions } from '../global-options.ts';

interface KeyView {
  id: string;
  name: string;
  role: string;
  created_at: string;
  last_used_at: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  token?: string;
}

/** A new key is printed once, with what to do with it; the server keeps only its hash. */
function printNewKey(key: KeyView, json: boolean): void {
  if (json) return printJson(key);
  process.stdout.write(
    `${key.token}\n` +
      `\nAPI key ${key.name} (${key.role}${key.expires_at ? `, expires ${key.expires_at}` : ''}): shown this once, store it now.\n` +
      'Use it with `export AETHERIUM_TOKEN=<key>` or `--token`, or `curl -H "Authorization: Bearer <key>"`.\n',
  );
}

export function registerTokenCommands(program: Command, client: () => ApiClient, global: () => GlobalOptions): void {
  const tokens = program.command('tokens').description('API keys: create, list, revoke (admin), bootstrap');
  tokens
    .command('create')
    .description('create an API key; it is printed once')
    .requiredOption('--name <name>', 'a name for the key (unique among live keys)')
    .requiredOption('--role <role>', 'viewer | operator | admin')
    .option('--expires <duration>', 'e.g. 30d, 12h (default: never)')
    .action(async (o) => {
      const body = { name: o.name, role: o.role, ...(o.expires ? { expires: o.expires } : {}) };
      const { data } = await client().post<KeyView>('/tokens', body);
      printNewKey(data, global().json);
    });
  tokens
    .command('list')
    .alias('ls')
    .description('list API keys (never their secrets)')
    .option('--all', 'include revoked keys')
    .action(async (o) => {
      const data = await client().get<{ tokens: KeyView[] }>(`/tokens${o.all ? '?include_revoked=true' : ''}`);
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
        data.tokens.map((k) => [k.id, k.name, k.role, k.created_at, k.last_used_at, k.expires_at, k.revoked_at]),
      );
    });
  tokens
    .command('revoke <id-or-name>')
    .description('revoke an API key at once, on every replica')
    .action(async (idOrName: string) => {
      const { data } = await client().delete<KeyView>(`/tokens/${encodeURIComponent(idOrName)}`);
      if (global().json) return printJson(data);
      process.stdout.write(`revoked API key ${data.name} (${data.id})\n`);
    });
  tokens
    .command('bootstrap')
    .description("create a new cluster's first admin key; works once, before any key exists")
    .action(async () => {
      const { data } = await client().post<KeyView>('/tokens/bootstrap');
      printNewKey(data, global().json);
    });
}

interface AuditRow {
  id: number;
  at: string;
  actor: string;
  role: string | null;
  action: string;
  route: string;
  target: string | null;
  source: string | null;
  outcome: string;
  status: number;
  details: Record<string, unknown>;
}

export function registerAuditCommand(program: Command, client: () => ApiClient, global: () => GlobalOptions): void {
  program
    .command('audit')
    .description('the audit log (admin): who did what, from where, with what outcome, newest first')
    .option('--actor <name>', 'only this caller')
    .option('--action <action>', 'e.g. vm.exec, worker.drain, token.create')
    .option('--outcome <outcome>', 'succeeded | failed | denied')
    .option('--since <time>', 'ISO time, e.g. 2026-12-01T10:00:00Z')
    .option('--limit <n>', 'at most this many entries (1-1000)', '100')
    .action(async (o) => {
      const params = new URLSearchParams({ limit: o.limit });
      for (const key of ['actor', 'action', 'outcome', 'since'] as const) if (o[key]) params.set(key, o[key]);
      const data = await client().get<{ entries: AuditRow[] }>(`/audit?${params}`);
      if (global().json) return printJson(data);
      printTable(
        ['TIME', 'ACTOR', 'ROLE', 'ACTION', 'TARGET', 'SOURCE', 'OUTCOME', 'DETAILS'],
        data.entries.map((e) => [
          e.at,
          e.actor,
          e.role,
          e.action,
          e.target,
          e.source,
          `${e.outcome} (${e.status})`,
          JSON.stringify(e.details),
        ]),
      );
    });
}
