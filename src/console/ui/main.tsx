import { StrictMode, useEffect, useMemo, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Provider } from 'urql';
import { Link, Route, Router, Switch, useLocation } from 'wouter';
import { useHashLocation } from 'wouter/use-hash-location';
import { makeClient, whoAmI, type Session } from './api.js';
import { DeadLettersPage } from './dead-letters.js';
import { ExecutionPage } from './execution.js';
import { ExecutionsPage } from './executions.js';
import { OverviewPage } from './overview.js';
import { RecipesPage } from './recipes.js';
import { ShardsPage } from './shards.js';
import { SignIn } from './sign-in.js';
import './console.css';

// The token lives in sessionStorage: it survives a reload, not the closing of the tab.
const TOKEN_KEY = 'sous.console.token';

const PAGES = [
  { path: '/', label: 'Overview' },
  { path: '/executions', label: 'Executions' },
  { path: '/dead-letters', label: 'Dead letters' },
  { path: '/recipes', label: 'Recipes' },
  { path: '/shards', label: 'Shards' },
] as const;

function Nav({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const [location] = useLocation();
  const current = (path: string) => (path === '/' ? location === '/' : location.startsWith(path));
  return (
    <header className="top">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <span className="brand">sous console</span>
      <nav aria-label="Pages">
        <ul>
          {PAGES.map((p) => (
            <li key={p.path}>
              <Link href={p.path} aria-current={current(p.path) ? 'page' : undefined}>
                {p.label}
              </Link>
            </li>
          ))}
        </ul>
      </nav>
      <span className="who">
        {session.name} <span className="role">({session.role.toLowerCase()})</span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </span>
    </header>
  );
}

function Console({ session, onSignOut }: { session: Session; onSignOut: () => void }) {
  const { client, dispose } = useMemo(() => makeClient(session.token), [session.token]);
  useEffect(() => dispose, [dispose]);
  return (
    <Provider value={client}>
      <Router hook={useHashLocation}>
        <Nav session={session} onSignOut={onSignOut} />
        <main id="main" tabIndex={-1}>
          <Switch>
            <Route path="/">
              <OverviewPage />
            </Route>
            <Route path="/executions">
              <ExecutionsPage />
            </Route>
            <Route path="/executions/:id">{(params) => <ExecutionPage id={params.id} session={session} />}</Route>
            <Route path="/dead-letters">
              <DeadLettersPage session={session} />
            </Route>
            <Route path="/recipes">
              <RecipesPage />
            </Route>
            <Route path="/shards">
              <ShardsPage session={session} />
            </Route>
            <Route>
              <h1>Not found</h1>
              <p>
                No such page: <Link href="/">back to the overview</Link>.
              </p>
            </Route>
          </Switch>
        </main>
      </Router>
    </Provider>
  );
}

function App() {
  const [session, setSession] = useState<Session | undefined>();
  const [checking, setChecking] = useState(() => sessionStorage.getItem(TOKEN_KEY) !== null);
  useEffect(() => {
    const stored = sessionStorage.getItem(TOKEN_KEY);
    if (stored === null) return;
    whoAmI(stored)
      .then(setSession)
      .catch(() => sessionStorage.removeItem(TOKEN_KEY))
      .finally(() => setChecking(false));
  }, []);
  if (checking) return <p>Checking the stored token…</p>;
  if (session === undefined) {
    return (
      <SignIn
        onSignedIn={(s) => {
          sessionStorage.setItem(TOKEN_KEY, s.token);
          setSession(s);
        }}
      />
    );
  }
  return (
    <Console
      session={session}
      onSignOut={() => {
        sessionStorage.removeItem(TOKEN_KEY);
        setSession(undefined);
      }}
    />
  );
}

const root = document.getElementById('root');
if (root !== null) {
  createRoot(root).render(
    <StrictMode>
      <App />
    </StrictMode>,
  );
}
