import { useRef, useState } from 'preact/hooks';
import type { Storage } from '../storage';
import { sentence, when } from '../text';
import {
  deleteReflection,
  editReflection,
  respond,
  type Audience,
  type Contribution,
  type KithDevice,
  type StoreOp,
} from '../wasm';

interface Props {
  item: Contribution;
  device: KithDevice;
  storage: Storage;
  onChanged: () => void;
  onStorageError: (error: unknown) => void;
}

type Mode = 'read' | 'edit' | 'confirm-delete' | 'answer';

/** One reflection. The member's own can be changed or deleted, here and on their other devices. */
export function ReflectionItem({ item, device, storage, onChanged, onStorageError }: Props) {
  const [mode, setMode] = useState<Mode>('read');
  const [draft, setDraft] = useState(item.text);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [audience, setAudience] = useState<Audience>('research');
  const box = useRef<HTMLTextAreaElement>(null);
  const editId = `edit-${item.id}`;
  const errorId = `error-${item.id}`;

  /** Makes the change in the core, then stores it; the list refreshes after. */
  const commit = async (change: () => StoreOp[]) => {
    if (busy) return;
    let ops;
    try {
      ops = change();
    } catch (e) {
      setError(sentence(e));
      return;
    }
    setBusy(true);
    try {
      await storage.applyOps(ops);
    } catch (e) {
      onStorageError(e);
      return;
    }
    setBusy(false);
    setError('');
    setMode('read');
    onChanged();
  };

  const save = (event: Event) => {
    event.preventDefault();
    if (!draft.trim()) {
      setError('Write something first, or delete it instead.');
      box.current?.focus();
      return;
    }
    void commit(() => editReflection(device, item.id, draft));
  };

  const answer = (event: Event) => {
    event.preventDefault();
    if (!draft.trim()) {
      setError('Write your answer first.');
      box.current?.focus();
      return;
    }
    void commit(() => respond(device, item.id, draft, audience).ops);
  };

  const prompt = item.kind === 'prompt';
  const byline = bylineOf(item);
  return (
    <li class={prompt ? 'reflection prompt' : 'reflection'}>
      <article aria-label={`${byline}, ${when(item.createdAt)}`}>
        <p class="meta">
          <span class="author">{byline}</span>
          <time dateTime={item.createdAt}>{when(item.createdAt)}</time>
        </p>
        {mode === 'edit' ? (
          <form class="stack" onSubmit={save} noValidate>
            <label for={editId} class="label">
              {prompt ? 'Change your question' : 'Change your reflection'}
            </label>
            <textarea
              id={editId}
              ref={box}
              class="input text"
              rows={4}
              value={draft}
              aria-describedby={error ? errorId : undefined}
              aria-invalid={error ? true : undefined}
              onInput={(e) => {
                setDraft(e.currentTarget.value);
                setError('');
              }}
            />
            <div class="actions">
              <button type="submit" class="button small" disabled={busy}>
                Save changes
              </button>
              <button
                type="button"
                class="button small quiet"
                onClick={() => {
                  setDraft(item.text);
                  setError('');
                  setMode('read');
                }}
              >
                Cancel
              </button>
            </div>
          </form>
        ) : (
          <p class="body">{item.text}</p>
        )}
        <p class="audience">
          {item.researchOnly ? 'Only the research team can read this.' : 'Your group and the research team can read this.'}
        </p>
        {mode === 'answer' && (
          <form class="stack" onSubmit={answer} noValidate>
            <label for={editId} class="label">
              Your answer
            </label>
            <textarea
              id={editId}
              ref={box}
              class="input text"
              rows={4}
              value={draft}
              aria-describedby={error ? errorId : undefined}
              aria-invalid={error ? true : undefined}
              onInput={(e) => {
                setDraft(e.currentTarget.value);
                setError('');
              }}
            />
            <fieldset class="choice">
              <legend class="label">Who can read it?</legend>
              <label class="option">
                <input
                  type="radio"
                  name={`audience-${item.id}`}
                  checked={audience === 'research'}
                  onChange={() => setAudience('research')}
                />
                Only the research team
              </label>
              <label class="option">
                <input
                  type="radio"
                  name={`audience-${item.id}`}
                  checked={audience === 'cohort'}
                  onChange={() => setAudience('cohort')}
                />
                My group and the research team
              </label>
            </fieldset>
            <div class="actions">
              <button type="submit" class="button small" disabled={busy}>
                Save answer
              </button>
              <button
                type="button"
                class="button small quiet"
                onClick={() => {
                  setError('');
                  setMode('read');
                }}
              >
                Cancel
              </button>
            </div>
          </form>
        )}
        {prompt && !item.mine && mode === 'read' && (
          <div class="actions">
            <button
              type="button"
              class="button small"
              onClick={() => {
                setDraft('');
                setMode('answer');
                requestAnimationFrame(() => box.current?.focus());
              }}
            >
              Answer
            </button>
          </div>
        )}
        {item.mine && mode === 'read' && (
          <div class="actions">
            <button
              type="button"
              class="button small quiet"
              onClick={() => {
                setDraft(item.text);
                setMode('edit');
                requestAnimationFrame(() => box.current?.focus());
              }}
            >
              Edit
            </button>
            <button type="button" class="button small quiet" onClick={() => setMode('confirm-delete')}>
              Delete
            </button>
          </div>
        )}
        {mode === 'confirm-delete' && (
          <div class="confirm" role="group" aria-label={prompt ? 'Delete this question?' : 'Delete this reflection?'}>
            <p>
              {prompt ? 'Delete this question?' : 'Delete this reflection?'} It leaves Kith on every phone when it next connects. Anyone who has
              read it already may still remember it.
            </p>
            <div class="actions">
              <button
                type="button"
                class="button small danger"
                disabled={busy}
                onClick={() => void commit(() => deleteReflection(device, item.id))}
              >
                Yes, delete it
              </button>
              <button type="button" class="button small quiet" onClick={() => setMode('read')}>
                Keep it
              </button>
            </div>
          </div>
        )}
        <p id={errorId} class="error" role="alert">
          {error}
        </p>
      </article>
    </li>
  );
}

/** Who wrote an item, and what kind it is, in plain words. */
function bylineOf(item: Contribution): string {
  switch (item.kind) {
    case 'prompt':
      return item.mine ? 'Your question to the group' : `A question from ${item.author}`;
    case 'response':
      return item.mine ? 'Your answer to a question' : `An answer from ${item.author}`;
    case 'agenda':
      return item.mine ? 'Your idea for the next meeting' : `For the next meeting, from ${item.author}`;
    default:
      return item.mine ? 'You' : item.author;
  }
}
