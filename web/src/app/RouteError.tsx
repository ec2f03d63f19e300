import { isRouteErrorResponse, Link, useRouteError } from 'react-router';
import { ErrorNote } from '../components/ui.tsx';

/** A page that threw while rendering: say what, and offer the way back. */
export function RouteError() {
  const error = useRouteError();
  return (
    <main className="mx-auto max-w-xl p-8">
      <h1 className="mb-3 text-xl font-semibold">This page failed</h1>
      <ErrorNote error={isRouteErrorResponse(error) ? new Error(`${error.status} ${error.statusText}`) : error} />
      <p className="mt-4">
        <Link to="/" className="link">
          Back to the dashboard
        </Link>
      </p>
    </main>
  );
}
