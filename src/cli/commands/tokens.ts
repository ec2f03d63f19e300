/** `aetherium tokens …` (API keys, and with --join the tokens new workers join with) and `aetherium audit`. */
import type { Command } from 'commander';
import type { ApiKey, ApiKeyCreated, AuditEntry, JoinToken, JoinTokenCreated } from '../../sdk/index.ts';
import { connect } from '../client.ts';
import { usageError } from '../errors.ts';
import type { GlobalOptions } from '../global-options.ts';
import { outputFormat } from '../global-options.ts';
import { type Column, formatTime, out, printJson, printList } from '../output.ts';

/** A new key is printed once, with what to do with it; the server keeps only its hash. */
function printNewKey(g: GlobalOptions, key: ApiKeyCreated): void {
  if (outputFormat(g) === 'json') return printJson(key);
  out(
    `${key.token}\n` +
      `\nAPI key ${key.name} (${key.role}${key.expires_at ? `, expires ${formatTime(key.expires_at)}` : ''}): shown this once, store it now.\n` +
      'Use it with `export AETHERIUM_TOKEN=<key>`, `--token`, a context (`aetherium context add NAME --api URL --token-file FILE`), ' +
      'or `curl -H "Authorization: Bearer <key>"`.\n',
  );
}

/**
 * The agent port of the control plane is not something the CLI knows (it talks to the API port), so
 * the line to paste carries a placeholder for it.
 */
const AGENT_ADDRESS_PLACEHOLDER = '<control-plane-host>:4647';

/** A new join token, printed once, with the line that joins a worker with it. */
function printNewJoinToken(g: GlobalOptions, created: JoinTokenCreated): void {
  if (outputFormat(g) === 'json') return printJson(created);
  const uses = created.max_uses === 1 ? 'one worker' : `up to ${created.max_uses} workers`;
  out(
    `${created.token}\n` +
      `\nJoin token ${created.id} (admits ${uses} until ${formatTime(created.expires_at)}): shown this once, store it now.\n` +
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
  if (!Number.isInteger(n) || n < 1) throw usageError(`--uses ${value}: expected a whole number of at least 1`);
  return n;
}

const KEY_COLUMNS: Column<ApiKey>[] = [
  { header: 'ID', value: (k) => k.id },
  { header: 'NAME', value: (k) => k.name },
  { header: 'ROLE', value: (k) => k.role },
  { header: 'CREATED', value: (k) => k.created_at },
  { header: 'LAST USED', value: (k) => k.last_used_at },
  { header: 'EXPIRES', value: (k) => k.expires_at },
  { header: 'REVOKED', value: (k) => k.revoked_at },
  { header: 'CREATED BY', value: (k) => k.created_by, wide: true },
];

const JOIN_COLUMNS: Column<JoinToken>[] = [
  { header: 'ID', value: (t) => t.id },
  { header: 'STATE', value: (t) => t.state },
  { header: 'USES', value: (t) => `${t.uses}/${t.max_uses}` },
  { header: 'EXPIRES', value: (t) => t.expires_at },
  { header: 'LAST USED', value: (t) => t.last_used_at },
  { header: 'LAST WORKER', value: (t) => t.last_worker_id },
  { header: 'CREATED BY', value: (t) => t.created_by },
  { header: 'DESCRIPTION', value: (t) => t.description, max: 40 },
  { header: 'CREATED', value: (t) => t.created_at, wide: true },
  { header: 'REVOKED', value: (t) => t.revoked_at, wide: true },
];

const AUDIT_COLUMNS: Column<AuditEntry>[] = [
  { header: 'TIME', value: (e) => e.at },
  { header: 'ACTOR', value: (e) => e.actor },
  { header: 'ROLE', value: (e) => e.role },
  { header: 'ACTION', value: (e) => e.action },
  { header: 'TARGET', value: (e) => e.target },
  { header: 'SOURCE', value: (e) => e.source },
  { header: 'OUTCOME', value: (e) => `${e.outcome} (${e.status})` },
  { header: 'DETAILS', value: (e) => JSON.stringify(e.details), max: 60 },
  { header: 'ID', value: (e) => e.id, wide: true },
  { header: 'ACTOR KIND', value: (e) => e.actor_kind, wide: true },
  { header: 'ROUTE', value: (e) => e.route, wide: true },
];

export function registerTokenCommands(program: Command, global: () => GlobalOptions): void {
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
      const g = global();
      if (o.join) {
        if (o.name || o.role || o.expires) {
          throw usageError(
            '--name, --role and --expires are for API keys; a join token takes --uses, --ttl and --description',
          );
        }
        const body = {
          ...(o.description ? { description: o.description } : {}),
          ...(o.uses === undefined ? {} : { max_uses: usesOption(o.uses) }),
          ...(o.ttl ? { ttl: o.ttl } : {}),
        };
        const client = await connect(g);
        return printNewJoinToken(g, await client.tokens.createJoin(body));
      }
      if (o.uses !== undefined || o.ttl || o.description) {
        throw usageError('--uses, --ttl and --description are for join tokens: add --join');
      }
      if (!o.name || !o.role) throw usageError('an API key needs --name and --role (or use --join for a join token)');
      const client = await connect(g);
      const body = { name: o.name, role: o.role, ...(o.expires ? { expires: o.expires } : {}) };
      printNewKey(g, await client.tokens.create(body));
    });
  tokens
    .command('list')
    .alias('ls')
    .description('list API keys, or with --join join tokens (never their secrets)')
    .option('--all', 'include revoked keys')
    .option('--join', 'list join tokens instead, every state included')
    .action(async (o) => {
      const g = global();
      const client = await connect(g);
      if (o.join) return printList(g, await client.call('listJoinTokens', {}), (d) => d.tokens, JOIN_COLUMNS);
      const query = o.all ? { include_revoked: 'true' as const } : {};
      printList(g, await client.call('listTokens', { query }), (d) => d.tokens, KEY_COLUMNS);
    });
  tokens
    .command('revoke <id-or-name>')
    .description('revoke an API key at once, on every replica; with --join, a join token (by id)')
    .option('--join', 'revoke a join token: no worker can join with it any more')
    .action(async (idOrName: string, o) => {
      const g = global();
      const client = await connect(g);
      if (o.join) {
        const revoked = await client.tokens.revokeJoin(idOrName);
        if (outputFormat(g) === 'json') return printJson(revoked);
        return out(
          `revoked join token ${revoked.id} (used ${revoked.uses}/${revoked.max_uses}); workers that joined with it keep their certificates (\`aetherium workers revoke <id>\`)\n`,
        );
      }
      const data = await client.tokens.revoke(idOrName);
      if (outputFormat(g) === 'json') return printJson(data);
      out(`revoked API key ${data.name} (${data.id})\n`);
    });
  tokens
    .command('bootstrap')
    .description("create a new cluster's first admin key; works once, before any key exists")
    .action(async () => {
      const g = global();
      const client = await connect(g);
      printNewKey(g, await client.tokens.bootstrap());
    });
}

export function registerAuditCommand(program: Command, global: () => GlobalOptions): void {
  program
    .command('audit')
    .description('the audit log (admin): who did what, from where, with what outcome, newest first')
    .option('--actor <name>', 'only this caller')
    .option('--action <action>', 'e.g. vm.exec, worker.drain, token.create')
    .option('--outcome <outcome>', 'succeeded | failed | denied')
    .option('--since <time>', 'ISO time, e.g. 2026-12-01T10:00:00Z')
    .option('--limit <n>', 'at most this many entries (1-1000)', '100')
    .action(async (o) => {
      const g = global();
      const client = await connect(g);
      const query: Record<string, string> = { limit: o.limit };
      for (const key of ['actor', 'action', 'outcome', 'since'] as const) if (o[key]) query[key] = o[key];
      printList(g, await client.call('audit', { query: query as never }), (d) => d.entries, AUDIT_COLUMNS);
    });
}
