/** The cluster's events as they happen, filtered by topic and text, with the stream's own notes. */
import { useMemo, useState } from 'react';
import { useEventLog, useLive } from '../api/live.tsx';
import { EventLine, gist } from '../components/EventLine.tsx';
import { Card, Empty, PageTitle } from '../components/ui.tsx';

const TOPICS = ['worker', 'vm', 'task'] as const;
const SHOW = 300;

export default function Events() {
  const log = useEventLog();
  const { state, lastId } = useLive();
  const [topics, setTopics] = useState<Set<string>>(new Set(TOPICS));
  const [text, setText] = useState('');
  const [frozen, setFrozen] = useState<typeof log | null>(null);
  const source = frozen ?? log;
  const shown = useMemo(() => {
    const q = text.toLowerCase();
    return source
      .filter((e) => {
        if (e.kind === 'note') return true;
        if (!topics.has(e.event.type.slice(0, e.event.type.indexOf('.')))) return false;
        return !q || `${e.event.type} ${JSON.stringify(e.event.data)} ${gist(e.event)}`.toLowerCase().includes(q);
      })
      .slice(0, SHOW);
  }, [source, topics, text]);

  return (
    <>
      <PageTitle title="Events">
        <span className="text-sm muted">
          {state} · last event #{lastId ?? '—'}
        </span>
      </PageTitle>
      <Card>
        <search className="mb-3 flex flex-wrap items-end gap-3">
          <fieldset className="flex gap-3">
            <legend className="label mb-1">Topics</legend>
            {TOPICS.map((t) => (
              <label key={t} className="flex items-center gap-1 text-sm">
                <input
                  type="checkbox"
                  checked={topics.has(t)}
                  onChange={(e) => {
                    const next = new Set(topics);
                    if (e.target.checked) next.add(t);
                    else next.delete(t);
                    setTopics(next);
                  }}
                />
                {t}
              </label>
            ))}
          </fieldset>
          <label className="flex flex-col gap-1">
            <span className="label">Search</span>
            <input
              className="input w-64"
              type="search"
              data-search
              placeholder="type, id, name  ( / )"
              value={text}
              onChange={(e) => setText(e.target.value)}
            />
          </label>
          <button
            type="button"
            className="btn"
            aria-pressed={frozen !== null}
            onClick={() => setFrozen(frozen ? null : log)}
          >
            {frozen ? 'Resume the view' : 'Hold the view'}
          </button>
        </search>
        <p className="mb-2 text-xs muted">
          The newest first; this page keeps the last 1000 since it opened, and shows {shown.length}. Older ones:{' '}
          <code className="font-mono">aetherium events --since ID</code>.
        </p>
        {shown.length === 0 ? <Empty>No events yet. Create a VM and watch them arrive.</Empty> : null}
        <ul className="divide-y divide-slate-100 dark:divide-slate-800" data-testid="events-log" aria-live="off">
          {shown.map((entry) => (
            <EventLine key={entry.kind === 'event' ? entry.event.id : entry.id} entry={entry} />
          ))}
        </ul>
      </Card>
    </>
  );
}
