/** `aetherium tokens …` (API keys, and with --join the tokens new workers join with) and `aetherium audit`. */
import type { Command } from 'commander';
import { type ApiClient, CliError } from '../api-client.ts';
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

interface JoinTokenView {
  id: string;
  description: string;
  max_uses: number;
  uses: number;
  expires_at: string;
  created_by: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  last_worker_id: string | null;
  state: string;
}

interface NewJoinToken {
  token: string;
  id: string;
  max_uses: number;
  expires_at: string;
  ca_fingerprint: string;
}

/**
 * The agent port of the control plane is not something the CLI knows (it talks to the API port), so
 * the line to paste carries a placeholder for it.
 */
const AGENT_ADDRESS_PLACEHOLDER = '<control-plane-host>:4647';

/** A new join token, printed once, with the line that joins a worker with it. */
function printNewJoinToken(created: NewJoinToken, json: boolean): void {
  if (json) return printJson(created);
  const uses = created.max_uses === 1 ? 'one worker' : `up to ${created.max_uses} workers`;
  process.stdout.write(
    `${created.token}\n` +
      `\nJoin token ${created.id} (admits ${uses} until ${created.expires_at}): shown this once, store it now.\n` +
      `It pins the control plane's CA ${created.ca_fingerprint}. On the new worker's host:\n\n` +
      `  aetherium worker --join ${created.token} --server ${AGENT_ADDRESS_PLACEHOLDER}\n\n` +
      `${AGENT_ADDRESS_PLACEHOLDER} is a placeholder: put the address of a control plane's agent port ` +
      '(agent.host and agent.port of its config; 4647 by default).\n',
  );
}

/** `--uses 3` as the number the API takes, refused here when it is not one. */
function usesOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`--uses ${value}: expected a whole number of at least 1`);
  return n;
}

export function registerTokenCommands(program: Command, client: () => ApiClient, global: () => GlobalOptions): void {
  const tokens = program
    .command('tokens')
    .description('API keys: create, list, revoke (admin), bootstrap; with --join, the tokens new workers join with');
  tokens
    .command('create')
    .description('create an API key, or with --join a join token for new workers; it is printed once')
    .option('--name <name>', 'API key: a name for the key (unique among live keys)')
    .option('--role <role>', 'API key: viewer | operator | admin')
    .option('--expires <duration>', 'API key: e.g. 30d, 12h (default: never)')
    .option('--join', 'create a join token, with which new workers get their certificates')
    .option('--uses <n>', 'join token: how many workers may join with it (default 1, at most 1000)')
    .option('--ttl <duration>', 'join token: how long it works, e.g. 30m, 1h, 7d (default 1h, at most 30d)')
    .option('--description <text>', 'join token: what it is for')
    .action(async (o) => {
      if (o.join) {
        if (o.name || o.role || o.expires) {
          throw new CliError(
            '--name, --role and --expires are for API keys; a join token takes --uses, --ttl and --description',
          );
        }
        const body = {
          ...(o.description ? { description: o.description } : {}),
          ...(o.uses === undefined ? {} : { max_uses: usesOption(o.uses) }),
          ...(o.ttl ? { ttl: o.ttl } : {}),
        };
        const { data } = await client().post<NewJoinToken>('/tokens/join', body);
        return printNewJoinToken(data, global().json);
      }
      if (o.uses !== undefined || o.ttl || o.description) {
        throw new CliError('--uses, --ttl and --description are for join tokens: add --join');
      }
      if (!o.name || !o.role) throw new CliError('an API key needs --name and --role (or use --join for a join token)');
      const body = { name: o.name, role: o.role, ...(o.expires ? { expires: o.expires } : {}) };
      const { data } = await client().post<KeyView>('/tokens', body);
      printNewKey(data, global().json);
    });
  tokens
    .command('list')
    .alias('ls')
    .description('list API keys, or with --join join tokens (never their secrets)')
    .option('--all', 'include revoked keys')
    .option('--join', 'list join tokens instead, every state included')
    .action(async (o) => {
      if (o.join) {
        const joins = await client().get<{ tokens: JoinTokenView[] }>('/tokens/join');
        if (global().json) return printJson(joins);
        return printTable(
          ['ID', 'STATE', 'USES', 'EXPIRES', 'LAST USED', 'LAST WORKER', 'CREATED BY', 'DESCRIPTION'],
          joins.tokens.map((t) => [
            t.id,
            t.state,
            `${t.uses}/${t.max_uses}`,
            t.expires_at,
            t.last_used_at,
            t.last_worker_id,
            t.created_by,
            t.description,
          ]),
        );
      }
      const data = await client().get<{ tokens: KeyView[] }>(`/tokens${o.all ? '?include_revoked=true' : ''}`);
      if (global().json) return printJson(data);
      printTable(
        ['ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'EXPIRES', 'REVOKED'],
        data.tokens.map((k) => [k.id, k.name, k.role, k.created_at, k.last_used_at, k.expires_at, k.revoked_at]),
      );
    });
  tokens
    .command('revoke <id-or-name>')
    .description('revoke an API key at once, on every replica; with --join, a join token (by id)')
    .option('--join', 'revoke a join token: no worker can join with it any more')
    .action(async (idOrName: string, o) => {
      if (o.join) {
        const revoked = await client().delete<JoinTokenView>(`/tokens/join/${encodeURIComponent(idOrName)}`);
        if (global().json) return printJson(revoked.data);
        return void process.stdout.write(
          `revoked join token ${revoked.data.id} (used ${revoked.data.uses}/${revoked.data.max_uses}); workers that joined with it keep their certificates (\`aetherium workers revoke <id>\`)\n`,
        );
      }
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
