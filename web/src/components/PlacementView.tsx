/** The scheduler's explanation of a placement: how many workers it saw, why each was turned down, what it chose. */
import { Link } from 'react-router';
import { KeyValues } from './ui.tsx';

interface Explanation {
  workers: number;
  evaluated: number;
  sampled: boolean;
  feasible: number;
  rejected: Partial<Record<string, number>>;
  strategy: string;
  chosen: { worker_id: string; driver: string; score: number } | null;
  reason?: string | undefined;
  moved_from?: string[];
  excluded?: string[];
}

export function PlacementView({ explanation }: { explanation: Explanation }) {
  const rejected = Object.entries(explanation.rejected)
    .filter(([, n]) => (n ?? 0) > 0)
    .sort(([, a], [, b]) => (b ?? 0) - (a ?? 0));
  return (
    <div className="space-y-3" data-testid="placement">
      {explanation.reason ? (
        <p
          className="rounded-md bg-amber-50 p-2 text-sm text-amber-900 dark:bg-amber-950 dark:text-amber-100"
          data-testid="placement-reason"
        >
          {explanation.reason}
        </p>
      ) : null}
      <KeyValues
        items={[
          [
            'Chosen',
            explanation.chosen ? (
              <span key="c">
                <Link className="link font-mono" to={`/workers/${encodeURIComponent(explanation.chosen.worker_id)}`}>
                  {explanation.chosen.worker_id}
                </Link>{' '}
                with {explanation.chosen.driver}, score {explanation.chosen.score.toFixed(3)}
              </span>
            ) : (
              'none'
            ),
          ],
          ['Strategy', explanation.strategy],
          [
            'Workers',
            `${explanation.workers} known, ${explanation.evaluated} evaluated${explanation.sampled ? ' (a sample)' : ''}, ${explanation.feasible} fit`,
          ],
          ...(explanation.moved_from?.length
            ? [['Moved from', explanation.moved_from.join(', ')] as [string, string]]
            : []),
          ...(explanation.excluded?.length ? [['Excluded', explanation.excluded.join(', ')] as [string, string]] : []),
        ]}
      />
      {rejected.length ? (
        <table className="table max-w-md">
          <caption className="mb-1 text-left text-sm font-medium">Workers turned down, by reason</caption>
          <thead>
            <tr>
              <th scope="col">Reason</th>
              <th scope="col">Workers</th>
            </tr>
          </thead>
          <tbody>
            {rejected.map(([reason, n]) => (
              <tr key={reason}>
                <td>{reason}</td>
                <td className="tabular-nums">{n}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </div>
  );
}
