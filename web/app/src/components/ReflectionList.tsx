import { when } from '../text';
import type { Contribution } from '../wasm';

/** Everyone's reflections this phone can read, newest first. */
export function ReflectionList({ items }: { items: Contribution[] }) {
  const newest = items
    .map((c, i) => ({ c, i, t: Date.parse(c.createdAt) || 0 }))
    .sort((a, b) => b.t - a.t || b.i - a.i)
    .map((x) => x.c);
  return (
    <section class="list" aria-labelledby="list-heading">
      <h2 id="list-heading">Reflections</h2>
      {newest.length === 0 ? (
        <p class="empty">No reflections yet. Yours will show here when you save one.</p>
      ) : (
        <ul class="reflections">
          {newest.map((c) => (
            <li key={c.id} class="reflection">
              <article aria-label={`${c.author}, ${when(c.createdAt)}`}>
                <p class="meta">
                  <span class="author">{c.author}</span>
                  <time dateTime={c.createdAt}>{when(c.createdAt)}</time>
                </p>
                <p class="body">{c.text}</p>
                <p class="audience">
                  {c.researchOnly ? 'Only the research team can read this.' : 'Your group and the research team can read this.'}
                </p>
              </article>
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
