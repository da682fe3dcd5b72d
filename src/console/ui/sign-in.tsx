import { useState, type FormEvent } from 'react';
import { whoAmI, type Session } from './api.js';
import { Notice } from './common.js';

export function SignIn({ onSignedIn }: { onSignedIn: (session: Session) => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const submit = (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(undefined);
    whoAmI(token.trim())
      .then(onSignedIn)
      .catch((e: unknown) => setError(e instanceof Error ? e.message : String(e)))
      .finally(() => setBusy(false));
  };
  return (
    <main id="main" className="sign-in">
      <h1>sous console</h1>
      <form onSubmit={submit}>
        <label htmlFor="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          required
          value={token}
          onChange={(e) => setToken(e.target.value)}
          aria-describedby="token-help"
        />
        <p id="token-help" className="muted">
          A token from <code>npm run token</code> or <code>createApiToken</code>. Its role decides what you can see and
          do; it is kept in this tab only.
        </p>
        <button type="submit" className="primary" disabled={busy}>
          Sign in
        </button>
      </form>
      {error === undefined ? null : <Notice tone="error">{error}</Notice>}
    </main>
  );
}
