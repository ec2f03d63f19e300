/**
 * Sign in with an API key (`ae_…`) or a JWT from the identity provider the server trusts. The
 * token is checked with the server (`GET /auth/whoami`) before it is kept.
 */
import { type FormEvent, useEffect, useRef, useState } from 'react';
import { Aetherium, UnauthorizedError } from '@aetherium/sdk';
import { type OidcConfig, startOidc } from '../api/oidc.ts';
import { apiUrl, messageOf, useSessionApi } from '../api/session.tsx';
import { ErrorNote } from '../components/ui.tsx';

export function SignIn({ reason }: { reason: string | null }) {
  const { signIn } = useSessionApi();
  const [token, setToken] = useState('');
  const [remember, setRemember] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const field = useRef<HTMLInputElement>(null);
  useEffect(() => field.current?.focus(), []);
  const [oidc, setOidc] = useState<OidcConfig | null>(null);
  useEffect(() => {
    // How this server signs in: an identity provider's button when one is configured.
    const anonymous = new Aetherium({ apiUrl: apiUrl() });
    anonymous
      .call('authConfig', {})
      .then((config) => setOidc(config.oidc))
      .catch(() => setOidc(null))
      .finally(() => anonymous.close());
  }, []);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!token.trim()) return setError('Enter an API key or a token.');
    setBusy(true);
    setError(null);
    try {
      await signIn(token, remember);
    } catch (err) {
      // The server's reason, after what it means for the user.
      setError(
        err instanceof UnauthorizedError ? `That key or token was not accepted: ${messageOf(err)}.` : messageOf(err),
      );
      setBusy(false);
    }
  };

  return (
    <main className="flex min-h-screen items-center justify-center p-4">
      <form onSubmit={submit} className="card w-full max-w-md space-y-4" aria-labelledby="sign-in-title">
        <div className="flex items-center gap-2">
          <img src="./favicon.svg" alt="" className="size-8" />
          <h1 id="sign-in-title" className="text-xl font-semibold">
            Sign in to Aetherium
          </h1>
        </div>
        {reason ? (
          <p className="rounded-md bg-amber-50 p-2 text-sm text-amber-900 dark:bg-amber-950 dark:text-amber-100">
            {reason}
          </p>
        ) : null}
        {oidc ? (
          <>
            <button
              type="button"
              className="btn btn-primary w-full justify-center"
              disabled={busy}
              onClick={() => {
                setBusy(true);
                startOidc(oidc).catch((err: unknown) => {
                  setError(messageOf(err));
                  setBusy(false);
                });
              }}
            >
              Sign in with {oidc.name}
            </button>
            <p className="text-center text-xs muted">or with an API key</p>
          </>
        ) : null}
        <label className="flex flex-col gap-1">
          <span className="label">API key or token</span>
          <input
            className="input font-mono"
            type="password"
            autoComplete="current-password"
            ref={field}
            value={token}
            onChange={(e) => setToken(e.target.value)}
            placeholder="ae_… or a JWT"
          />
        </label>
        <label className="flex items-center gap-2 text-sm">
          <input type="checkbox" checked={remember} onChange={(e) => setRemember(e.target.checked)} />
          Remember me on this browser
        </label>
        {error ? <ErrorNote error={new Error(error)} title="Sign-in failed" /> : null}
        <button type="submit" className={`btn w-full justify-center ${oidc ? '' : 'btn-primary'}`} disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p className="text-xs muted">
          <code className="font-mono">aetherium dev</code> wrote its admin key to{' '}
          <code className="font-mono">.aetherium/admin.key</code>; create keys for others with{' '}
          <code className="font-mono">aetherium tokens create --role viewer</code>. Without “remember me” the key is
          kept only in this tab.
        </p>
      </form>
    </main>
  );
}
