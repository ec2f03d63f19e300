import { Link, useLocation } from 'react-router';
import { PageTitle } from '../components/ui.tsx';

export default function NotFound() {
  const { pathname } = useLocation();
  return (
    <>
      <PageTitle title="No such page" />
      <p className="muted">
        Nothing is at <code className="font-mono">{pathname}</code>.{' '}
        <Link to="/" className="link">
          Back to the dashboard
        </Link>
      </p>
    </>
  );
}
