/**
 * The route × role table: who may call what. The server reads it on every request, refuses to
 * start with a route that has no entry, and the README's table and the access tests are generated
 * from it, so the three cannot drift apart.
 *
 * viewer reads; operator also creates, executes in, stops, starts and deletes VMs and cancels
 * tasks; admin also drains, activates, changes eligibility, manages API keys and join tokens,
 * revokes workers' certificates and reads the audit.
 */
import type { Role } from './roles.ts';

export type Access = 'public' | Role;

export const ROUTE_ACCESS: Readonly<Record<string, Access>> = {
  'GET /health': 'public',
  'GET /api/v1/health': 'public',
  // Prometheus scrapes with a key of its own; any role may read the cluster's numbers.
  'GET /metrics': 'viewer',
  // The web UI's files: they hold no cluster data (the page signs in with its own token).
  'GET /': 'public',
  'GET /*': 'public',
  'POST /api/v1/vms': 'operator',
  'GET /api/v1/vms': 'viewer',
  'GET /api/v1/vms/:id': 'viewer',
  'DELETE /api/v1/vms/:id': 'operator',
  'POST /api/v1/vms/:id/start': 'operator',
  'POST /api/v1/vms/:id/stop': 'operator',
  'POST /api/v1/vms/:id/exec': 'operator',
  'GET /api/v1/vms/:id/exec/stream': 'operator',
  'GET /api/v1/vms/:id/executions': 'viewer',
  'GET /api/v1/tasks': 'viewer',
  'GET /api/v1/tasks/:id': 'viewer',
  'POST /api/v1/tasks/:id/cancel': 'operator',
  'GET /api/v1/workers': 'viewer',
  'GET /api/v1/workers/:id': 'viewer',
  'GET /api/v1/workers/:id/vms': 'viewer',
  'GET /api/v1/workers/:id/metrics': 'viewer',
  // Log lines can hold what an operator should see and a viewer need not (commands, paths).
  'GET /api/v1/workers/:id/logs': 'operator',
  'POST /api/v1/workers/:id/drain': 'admin',
  'POST /api/v1/workers/:id/activate': 'admin',
  'POST /api/v1/workers/:id/eligibility': 'admin',
  'POST /api/v1/workers/:id/revoke': 'admin',
  'GET /api/v1/cluster/stats': 'viewer',
  'GET /api/v1/cluster/distribution': 'viewer',
  'POST /api/v1/schedule/plan': 'viewer',
  'GET /api/v1/events': 'viewer',
  'GET /api/v1/auth/whoami': 'viewer',
  // Before a page has a token: how to sign in, and the redeeming of an OIDC code (rate-limited).
  'GET /api/v1/auth/config': 'public',
  'POST /api/v1/auth/oidc/token': 'public',
  'POST /api/v1/tokens': 'admin',
  'GET /api/v1/tokens': 'admin',
  'DELETE /api/v1/tokens/:id': 'admin',
  'POST /api/v1/tokens/bootstrap': 'public',
  'POST /api/v1/tokens/join': 'admin',
  'GET /api/v1/tokens/join': 'admin',
  'DELETE /api/v1/tokens/join/:id': 'admin',
  'GET /api/v1/audit': 'admin',
};

/** The API's documentation (OpenAPI and its UI) holds no cluster data: it is public. */
const PUBLIC_PREFIXES = ['/api/docs'];

/** The access a route needs, or undefined when the table has no entry for it. HEAD is GET's. */
export function accessOf(method: string, url: string): Access | undefined {
  if (PUBLIC_PREFIXES.some((prefix) => url === prefix || url.startsWith(`${prefix}/`))) return 'public';
  return ROUTE_ACCESS[`${method === 'HEAD' ? 'GET' : method} ${url}`];
}
