/**
 * The app: the session first (sign in, or the server's answer that none is needed), then, per
 * session, a query cache, the live event layer and the router. The router's basename is the path
 * the control plane serves the UI under (`<base href>`), so links work behind a proxy's prefix.
 */
import { ApiError } from '@aetherium/sdk';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { lazy, Suspense, useState } from 'react';
import { createBrowserRouter, RouterProvider } from 'react-router';
import { LiveProvider } from '../api/live.tsx';
import { SessionProvider, useSessionApi } from '../api/session.tsx';
import { Spinner } from '../components/ui.tsx';
import { Dashboard } from '../pages/Dashboard.tsx';
import { SignIn } from '../pages/SignIn.tsx';
import { Workers } from '../pages/Workers.tsx';
import { Layout } from './Layout.tsx';
import { RouteError } from './RouteError.tsx';

const WorkerPage = lazy(() => import('../pages/WorkerPage.tsx'));
const Vms = lazy(() => import('../pages/Vms.tsx'));
const VmPage = lazy(() => import('../pages/VmPage.tsx'));
const Tasks = lazy(() => import('../pages/Tasks.tsx'));
const TaskPage = lazy(() => import('../pages/TaskPage.tsx'));
const Control = lazy(() => import('../pages/Control.tsx'));
const Plan = lazy(() => import('../pages/Plan.tsx'));
const Events = lazy(() => import('../pages/Events.tsx'));
const NotFound = lazy(() => import('../pages/NotFound.tsx'));

const basename = new URL('.', document.baseURI).pathname.replace(/\/+$/, '') || '/';

const page = (element: React.ReactNode) => <Suspense fallback={<Spinner label="Loading page" />}>{element}</Suspense>;

const router = createBrowserRouter(
  [
    {
      element: <Layout />,
      errorElement: <RouteError />,
      children: [
        { index: true, element: <Dashboard /> },
        { path: 'workers', element: <Workers /> },
        { path: 'workers/:id', element: page(<WorkerPage />) },
        { path: 'vms', element: page(<Vms />) },
        { path: 'vms/:id', element: page(<VmPage />) },
        { path: 'tasks', element: page(<Tasks />) },
        { path: 'tasks/:id', element: page(<TaskPage />) },
        { path: 'control', element: page(<Control />) },
        { path: 'plan', element: page(<Plan />) },
        { path: 'events', element: page(<Events />) },
        { path: '*', element: page(<NotFound />) },
      ],
    },
  ],
  { basename },
);

function newQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // Events say when data changed (the live layer invalidates it): no refetch on a timer or focus.
        staleTime: Number.POSITIVE_INFINITY,
        refetchOnWindowFocus: false,
        refetchOnReconnect: true,
        // The SDK already retried what may be retried; a 4xx is an answer.
        retry: (count, err) => count < 1 && !(err instanceof ApiError && err.status >= 400 && err.status < 500),
      },
    },
  });
}

function SignedIn() {
  const [queryClient] = useState(newQueryClient);
  return (
    <QueryClientProvider client={queryClient}>
      <LiveProvider>
        <RouterProvider router={router} />
      </LiveProvider>
    </QueryClientProvider>
  );
}

function Gate() {
  const { state } = useSessionApi();
  if (state.status === 'checking') return <Spinner label="Connecting to the control plane" />;
  if (state.status === 'signed-out') return <SignIn reason={state.reason} />;
  // A new session (another key) starts from an empty cache.
  return <SignedIn key={state.identity.id} />;
}

export function App() {
  return (
    <SessionProvider>
      <Gate />
    </SessionProvider>
  );
}
