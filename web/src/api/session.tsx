/**
 * Who the page is signed in as. The token lives in sessionStorage (this tab, until it closes), or
 * in localStorage when the user asked to be remembered on this browser; it is only ever sent to
 * this control plane, as the SDK's bearer. The role the server answers (`GET /auth/whoami`) decides
 * which controls a page shows: the server refuses the rest anyway.
 */
import { Aetherium, type Identity, type Role, roleAtLeast, UnauthorizedError } from '@aetherium/sdk';
import { completeOidc, isOidcCallback } from './oidc.ts';
import { createContext, type ReactNode, useCallback, useContext, useEffect, useMemo, useState } from 'react';

export const TOKEN_KEY = 'aetherium.token';

/** The API is the page's own origin and path: `<base href>` is where the control plane serves the UI. */
export function apiUrl(): string {
  return new URL('.', document.baseURI).href.replace(/\/+$/, '');
}

function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? localStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage refused (a privacy mode): sign in every time
  }
}

function storeToken(token: string | null, remember: boolean): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
    localStorage.removeItem(TOKEN_KEY);
    if (token) (remember ? localStorage : sessionStorage).setItem(TOKEN_KEY, token);
  } catch {
    // kept in memory only
  }
}

export type SessionState =
  | { status: 'checking' }
  | { status: 'signed-out'; reason: string | null }
  | { status: 'signed-in'; client: Aetherium; identity: Identity };

interface SessionApi {
  state: SessionState;
  signIn(token: string, remember: boolean): Promise<void>;
  signOut(reason?: string): void;
}

const SessionContext = createContext<SessionApi | null>(null);

async function open(token: string | null): Promise<{ client: Aetherium; identity: Identity }> {
  const client = new Aetherium({ apiUrl: apiUrl(), token });
  try {
    return { client, identity: await client.whoami() };
  } catch (err) {
    client.close();
    throw err;
  }
}

export function SessionProvider({ children }: { children: ReactNode }) {
  const [state, setState] = useState<SessionState>({ status: 'checking' });

  useEffect(() => {
    let cancelled = false;
    const start = async () => {
      // Back from the identity provider: its code becomes the token this tab signs in with.
      if (isOidcCallback()) {
        const anonymous = new Aetherium({ apiUrl: apiUrl() });
        try {
          storeToken(await completeOidc(anonymous), false);
        } catch (err) {
          // Shown on the sign-in page as it is (a refusal here is not a stale stored key).
          throw new Error(messageOf(err));
        } finally {
          anonymous.close();
        }
      }
      // A stored token, or none: a server with authentication off answers whoami without one.
      return open(storedToken());
    };
    start()
      .then((session) => !cancelled && setState({ status: 'signed-in', ...session }))
      .catch((err: unknown) => {
        if (cancelled) return;
        if (err instanceof UnauthorizedError) storeToken(null, false);
        const reason = storedToken() || !(err instanceof UnauthorizedError) ? messageOf(err) : null;
        setState({ status: 'signed-out', reason });
      });
    return () => {
      cancelled = true;
    };
  }, []);

  const signIn = useCallback(async (token: string, remember: boolean) => {
    const session = await open(token.trim());
    storeToken(token.trim(), remember);
    setState({ status: 'signed-in', ...session });
  }, []);

  const signOut = useCallback((reason?: string) => {
    storeToken(null, false);
    setState((previous) => {
      if (previous.status === 'signed-in') previous.client.close();
      return { status: 'signed-out', reason: reason ?? null };
    });
  }, []);

  const api = useMemo(() => ({ state, signIn, signOut }), [state, signIn, signOut]);
  return <SessionContext.Provider value={api}>{children}</SessionContext.Provider>;
}

export function useSessionApi(): SessionApi {
  const api = useContext(SessionContext);
  if (!api) throw new Error('useSessionApi outside SessionProvider');
  return api;
}

export interface Session {
  client: Aetherium;
  identity: Identity;
  /** True when the signed-in role may do what `need` requires. */
  can(need: Role): boolean;
  signOut(reason?: string): void;
}

/** The signed-in session; only for pages inside the signed-in layout. */
export function useSession(): Session {
  const { state, signOut } = useSessionApi();
  if (state.status !== 'signed-in') throw new Error('useSession while signed out');
  const { client, identity } = state;
  return useMemo(
    () => ({ client, identity, can: (need: Role) => roleAtLeast(identity.role, need), signOut }),
    [client, identity, signOut],
  );
}

export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
