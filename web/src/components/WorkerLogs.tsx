/**
 * A worker's own log, followed live (`GET /workers/{id}/logs?follow=true`): the recent lines, then
 * each new one. Operators and admins only: log lines can name commands and paths.
 */
import { NotFoundError, type WorkerLogLine } from '@aetherium/sdk';
import { useEffect, useRef, useState } from 'react';
import { messageOf, useSession } from '../api/session.tsx';
import { Empty } from './ui.tsx';

const KEEP = 1000;
const LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

function render(line: WorkerLogLine): { time: string; level: string; text: string } {
  const { time, level, msg, pid: _pid, hostname: _host, ...rest } = line as Record<string, unknown>;
  const fields = Object.entries(rest)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return {
    time: typeof time === 'number' || typeof time === 'string' ? new Date(time).toLocaleTimeString() : '',
    level: typeof level === 'number' ? (LEVELS[level] ?? String(level)) : String(level ?? ''),
    text: `${String(msg ?? '')} ${fields}`.trim(),
  };
}

export function WorkerLogs({ workerId }: { workerId: string }) {
  const { client } = useSession();
  const [lines, setLines] = useState<WorkerLogLine[]>([]);
  const [state, setState] = useState<'following' | 'ended' | 'unavailable' | 'failed'>('following');
  const [error, setError] = useState<string | null>(null);
  const [paused, setPaused] = useState(false);
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    let pending: WorkerLogLine[] = [];
    let timer: ReturnType<typeof setTimeout> | null = null;
    const follow = client.workers.followLogs(
      workerId,
      { limit: 200 },
      {
        onLine: (line) => {
          pending.push(line);
          timer ??= setTimeout(() => {
            timer = null;
            const add = pending;
            pending = [];
            setLines((old) => [...old, ...add].slice(-KEEP));
          }, 100);
        },
      },
    );
    follow.done.then(
      () => setState('ended'),
      (err: unknown) => {
        if ((err as Error).name === 'AbortError' || (err as { code?: string }).code === 'aborted') return;
        setState(err instanceof NotFoundError ? 'unavailable' : 'failed');
        setError(messageOf(err));
      },
    );
    return () => {
      if (timer) clearTimeout(timer);
      follow.close();
    };
  }, [client, workerId]);

  useEffect(() => {
    const el = box.current;
    if (el && !paused && lines.length) el.scrollTop = el.scrollHeight;
  }, [lines, paused]);

  if (state === 'unavailable') return <Empty>This worker does not serve its log: {error}</Empty>;
  return (
    <div>
      <div className="mb-2 flex items-center justify-between text-xs muted">
        <span role="status">
          {state === 'following' ? 'Following' : state === 'ended' ? 'The log stream ended' : `Failed: ${error}`} ·{' '}
          {lines.length} lines
        </span>
        <button type="button" className="btn py-0.5 text-xs" onClick={() => setPaused((p) => !p)}>
          {paused ? 'Scroll with new lines' : 'Hold scroll'}
        </button>
      </div>
      <div
        ref={box}
        // biome-ignore lint/a11y/noNoninteractiveTabindex: a scrollable log must be focusable
        tabIndex={0}
        role="log"
        aria-label="Worker log"
        className="h-72 overflow-auto rounded bg-slate-950 p-2 font-mono text-xs text-slate-100"
      >
        {lines.length === 0 ? <p className="text-slate-300">No log lines yet.</p> : null}
        {lines.map((line, i) => {
          const r = render(line);
          return (
            // biome-ignore lint/suspicious/noArrayIndexKey: lines only append
            <div key={i} className="whitespace-pre-wrap [overflow-wrap:anywhere]">
              <span className="text-slate-400">{r.time}</span>{' '}
              <span
                className={
                  r.level === 'error' || r.level === 'fatal'
                    ? 'text-red-300'
                    : r.level === 'warn'
                      ? 'text-amber-300'
                      : 'text-sky-300'
                }
              >
                {r.level}
              </span>{' '}
              {r.text}
            </div>
          );
        })}
      </div>
    </div>
  );
}
