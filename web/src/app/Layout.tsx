/**
 * The frame of every signed-in page: the navigation, who is signed in and with which role, the
 * live stream's state, the theme, and the keyboard shortcuts (`g` then a page's letter, `/` to
 * search, `?` for the list).
 */
import { useEffect, useRef, useState } from 'react';
import { NavLink, Outlet, useNavigate } from 'react-router';
import { useLive } from '../api/live.tsx';
import { useSession } from '../api/session.tsx';
import { Badge } from '../components/ui.tsx';
import { setTheme, storedTheme, type Theme } from './theme.ts';

const NAV: { to: string; label: string; key: string; end?: boolean }[] = [
  { to: '/', label: 'Dashboard', key: 'd', end: true },
  { to: '/workers', label: 'Workers', key: 'w' },
  { to: '/vms', label: 'VMs', key: 'v' },
  { to: '/tasks', label: 'Tasks', key: 't' },
  { to: '/control', label: 'Control', key: 'c' },
  { to: '/plan', label: 'What-if', key: 'p' },
  { to: '/events', label: 'Events', key: 'e' },
];

const LIVE_LABEL = {
  connecting: 'Connecting',
  live: 'Live',
  reconnecting: 'Reconnecting',
  paused: 'Paused (tab hidden)',
  failed: 'Disconnected',
} as const;

function LiveIndicator() {
  const { state, lastId, error } = useLive();
  const dot = state === 'live' ? 'bg-emerald-500' : state === 'failed' ? 'bg-red-500' : 'bg-amber-500';
  return (
    <span
      data-testid="connection-state"
      data-state={state}
      className="inline-flex items-center gap-1.5 text-sm"
      title={error ?? `last event ${lastId ?? 'none'}`}
    >
      <span className={`size-2 rounded-full ${dot}`} aria-hidden />
      <span>{LIVE_LABEL[state]}</span>
      <span data-testid="last-event-id" data-id={lastId ?? ''} className="sr-only">
        last event {lastId ?? 'none'}
      </span>
    </span>
  );
}

function ThemeSwitch() {
  const [theme, set] = useState<Theme>(storedTheme);
  return (
    <label className="inline-flex items-center gap-1 text-sm">
      <span className="sr-only">Theme</span>
      <select
        className="input py-1"
        value={theme}
        onChange={(e) => {
          const next = e.target.value as Theme;
          set(next);
          setTheme(next);
        }}
      >
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function useShortcuts(onHelp: () => void) {
  const navigate = useNavigate();
  const pendingG = useRef(false);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return;
      if (target?.closest('.xterm')) return;
      if (pendingG.current) {
        pendingG.current = false;
        const item = NAV.find((n) => n.key === e.key);
        if (item) {
          e.preventDefault();
          navigate(item.to);
        }
        return;
      }
      if (e.key === 'g') pendingG.current = true;
      else if (e.key === '/') {
        const search = document.querySelector<HTMLInputElement>('[data-search]');
        if (search) {
          e.preventDefault();
          search.focus();
        }
      } else if (e.key === '?') onHelp();
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [navigate, onHelp]);
}

function ShortcutHelp({ onClose }: { onClose: () => void }) {
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => ref.current?.showModal(), []);
  return (
    <dialog
      ref={ref}
      onClose={onClose}
      aria-labelledby="shortcuts-title"
      className="m-auto rounded-lg bg-white p-5 text-slate-900 shadow-xl backdrop:bg-black/40 dark:bg-slate-900 dark:text-slate-100"
    >
      <h2 id="shortcuts-title" className="mb-3 font-semibold">
        Keyboard shortcuts
      </h2>
      <ul className="space-y-1 text-sm">
        {NAV.map((n) => (
          <li key={n.key}>
            <kbd className="rounded border px-1 font-mono">g</kbd>{' '}
            <kbd className="rounded border px-1 font-mono">{n.key}</kbd> {n.label}
          </li>
        ))}
        <li>
          <kbd className="rounded border px-1 font-mono">/</kbd> search the list on this page
        </li>
        <li>
          <kbd className="rounded border px-1 font-mono">?</kbd> this help;{' '}
          <kbd className="rounded border px-1 font-mono">Esc</kbd> closes it
        </li>
      </ul>
      <form method="dialog" className="mt-4 text-right">
        <button type="submit" className="btn">
          Close
        </button>
      </form>
    </dialog>
  );
}

export function Layout() {
  const { identity, signOut } = useSession();
  const [help, setHelp] = useState(false);
  useShortcuts(() => setHelp(true));
  return (
    <div className="min-h-screen">
      <a href="#main" className="sr-only focus:not-sr-only focus:absolute focus:top-2 focus:left-2 focus:z-50 btn">
        Skip to content
      </a>
      <header className="flex flex-wrap items-center justify-between gap-3 border-b border-slate-200 bg-white px-4 py-2 dark:border-slate-800 dark:bg-slate-900">
        <div className="flex items-center gap-2 font-semibold">
          <img src="./favicon.svg" alt="" className="size-6" />
          Aetherium
        </div>
        <div className="flex flex-wrap items-center gap-3">
          <LiveIndicator />
          <span className="text-sm" data-testid="identity">
            {identity.name} <Badge tone="blue">{identity.role}</Badge>
          </span>
          <ThemeSwitch />
          <button type="button" className="btn" onClick={() => setHelp(true)} aria-label="Keyboard shortcuts">
            ?
          </button>
          {identity.auth_enabled ? (
            <button type="button" className="btn" onClick={() => signOut()}>
              Sign out
            </button>
          ) : null}
        </div>
      </header>
      <div className="flex flex-col md:flex-row">
        <nav
          aria-label="Main"
          className="shrink-0 border-b border-slate-200 p-2 md:min-h-[calc(100vh-49px)] md:w-44 md:border-r md:border-b-0 dark:border-slate-800"
        >
          <ul className="flex flex-wrap gap-0.5 md:block md:space-y-0.5">
            {NAV.map((item) => (
              <li key={item.to}>
                <NavLink
                  to={item.to}
                  end={item.end ?? false}
                  className={({ isActive }) =>
                    `block rounded-md px-3 py-1.5 text-sm ${isActive ? 'bg-indigo-100 font-semibold text-indigo-900 dark:bg-indigo-900/60 dark:text-indigo-50' : 'hover:bg-slate-100 dark:hover:bg-slate-800'}`
                  }
                >
                  {item.label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <main id="main" className="min-w-0 flex-1 p-4 lg:p-6">
          <Outlet />
        </main>
      </div>
      {help ? <ShortcutHelp onClose={() => setHelp(false)} /> : null}
    </div>
  );
}
