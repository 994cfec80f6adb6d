import type { Storage } from '../storage';
import type { Contribution, KithDevice } from '../wasm';
import { ReflectionItem } from './ReflectionItem';

interface Props {
  items: Contribution[];
  device: KithDevice;
  storage: Storage;
  onChanged: () => void;
  onStorageError: (error: unknown) => void;
}

/** Everyone's reflections this phone can read, newest first. */
export function ReflectionList({ items, device, storage, onChanged, onStorageError }: Props) {
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
            <ReflectionItem
              key={c.id}
              item={c}
              device={device}
              storage={storage}
              onChanged={onChanged}
              onStorageError={onStorageError}
            />
          ))}
        </ul>
      )}
    </section>
  );
}
