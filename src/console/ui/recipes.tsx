import { diffLines } from 'diff';
import { useState } from 'react';
import { useQuery } from 'urql';
import { stringify } from 'yaml';
import { describeError } from './api.js';
import { Notice, Time } from './common.js';
import { RECIPES, type RecipesData } from './queries.js';

const asYaml = (plan: unknown) => stringify(plan, { lineWidth: 0 });

export function RecipesPage() {
  const [result] = useQuery<RecipesData>({ query: RECIPES });
  const [name, setName] = useState<string | undefined>();
  const [shown, setShown] = useState<number | undefined>();
  const [from, setFrom] = useState<number | undefined>();
  const [to, setTo] = useState<number | undefined>();
  if (result.error !== undefined) return <Notice tone="error">{describeError(result.error)}</Notice>;
  const recipes = result.data?.recipes ?? [];
  const recipe = recipes.find((r) => r.name === name);
  const versions = recipe === undefined ? [] : [...recipe.versions].sort((a, b) => b.version - a.version);
  const version = versions.find((v) => v.version === (shown ?? recipe?.latestVersion));
  const left = versions.find((v) => v.version === from);
  const right = versions.find((v) => v.version === to);
  return (
    <>
      <h1>Recipes</h1>
      <div className="split">
        <nav aria-label="Recipes" className="list">
          <ul>
            {recipes.map((r) => (
              <li key={r.name}>
                <button
                  type="button"
                  aria-pressed={r.name === name}
                  onClick={() => {
                    setName(r.name);
                    setShown(undefined);
                    setFrom(r.versions.length > 1 ? r.latestVersion - 1 : undefined);
                    setTo(r.latestVersion);
                  }}
                >
                  {r.name} <span className="muted">v{r.latestVersion}</span>
                </button>
              </li>
            ))}
          </ul>
          {result.data !== undefined && recipes.length === 0 ? <p>No recipe is registered.</p> : null}
        </nav>
        {recipe === undefined ? (
          <p className="muted">Select a recipe.</p>
        ) : (
          <section aria-labelledby="recipe-title">
            <h2 id="recipe-title">{recipe.name}</h2>
            <div className="table-wrap">
              <table aria-label={`Versions of ${recipe.name}`}>
                <thead>
                  <tr>
                    <th scope="col">Version</th>
                    <th scope="col">Checksum</th>
                    <th scope="col">Registered</th>
                    <th scope="col">Plan</th>
                  </tr>
                </thead>
                <tbody>
                  {versions.map((v) => (
                    <tr key={v.version}>
                      <td>v{v.version}</td>
                      <td className="mono">{v.checksum.slice(0, 12)}</td>
                      <td>
                        <Time at={v.createdAt} />
                      </td>
                      <td>
                        <button type="button" onClick={() => setShown(v.version)} aria-pressed={v === version}>
                          Show v{v.version}
                        </button>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            {version === undefined ? null : (
              <>
                <h3>Plan of v{version.version} (YAML)</h3>
                <pre className="json yaml" tabIndex={0} aria-label={`Plan of version ${version.version}`}>
                  {asYaml(version.plan)}
                </pre>
              </>
            )}
            <h3>Compare two versions</h3>
            <form className="filters" onSubmit={(e) => e.preventDefault()} aria-label="Choose versions to compare">
              {(
                [
                  ['From', from, setFrom],
                  ['To', to, setTo],
                ] as const
              ).map(([label, value, setValue]) => (
                <label key={label}>
                  {label}
                  <select
                    value={value ?? ''}
                    onChange={(e) => setValue(e.target.value === '' ? undefined : Number(e.target.value))}
                  >
                    <option value="">—</option>
                    {versions.map((v) => (
                      <option key={v.version} value={v.version}>
                        v{v.version}
                      </option>
                    ))}
                  </select>
                </label>
              ))}
            </form>
            {left === undefined || right === undefined ? (
              <p className="muted">Choose two versions to see what changed.</p>
            ) : (
              <pre className="json diff" tabIndex={0} aria-label={`Changes from v${left.version} to v${right.version}`}>
                {diffLines(asYaml(left.plan), asYaml(right.plan)).map((part, i) => (
                  <span key={i} className={part.added ? 'added' : part.removed ? 'removed' : undefined}>
                    {part.value
                      .replace(/\n$/, '')
                      .split('\n')
                      .map((line) => `${part.added ? '+ ' : part.removed ? '- ' : '  '}${line}\n`)
                      .join('')}
                  </span>
                ))}
              </pre>
            )}
          </section>
        )}
      </div>
    </>
  );
}
