import type { ComponentChildren, RefObject } from 'preact';
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
import { AudienceChoice } from './AudienceChoice';

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
          <DraftForm
            id={editId}
            label={prompt ? 'Change your question' : 'Change your reflection'}
            submit="Save changes"
            boxRef={box}
            draft={draft}
            error={error}
            errorId={errorId}
            busy={busy}
            onInput={(text) => {
              setDraft(text);
              setError('');
            }}
            onSubmit={save}
            onCancel={() => {
              setDraft(item.text);
              setError('');
              setMode('read');
            }}
          />
        ) : (
          <p class="body">{item.text}</p>
        )}
        <p class="audience">
          {item.researchOnly ? 'Only the research team can read this.' : 'Your group and the research team can read this.'}
        </p>
        {mode === 'answer' && (
          <DraftForm
            id={editId}
            label="Your answer"
            submit="Save answer"
            boxRef={box}
            draft={draft}
            error={error}
            errorId={errorId}
            busy={busy}
            onInput={(text) => {
              setDraft(text);
              setError('');
            }}
            onSubmit={answer}
            onCancel={() => {
              setError('');
              setMode('read');
            }}
          >
            <AudienceChoice name={`audience-${item.id}`} value={audience} onChange={setAudience} />
          </DraftForm>
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

interface DraftFormProps {
  id: string;
  label: string;
  submit: string;
  boxRef: RefObject<HTMLTextAreaElement | null>;
  draft: string;
  error: string;
  errorId: string;
  busy: boolean;
  onInput: (text: string) => void;
  onSubmit: (event: Event) => void;
  onCancel: () => void;
  /** More fields, between the text and the buttons. */
  children?: ComponentChildren;
}

/** A text box under an item (to change it, or to answer it), with Save and Cancel. */
function DraftForm(props: DraftFormProps) {
  const { id, error, errorId } = props;
  return (
    <form class="stack" onSubmit={props.onSubmit} noValidate>
      <label for={id} class="label">
        {props.label}
      </label>
      <textarea
        id={id}
        ref={props.boxRef}
        class="input text"
        rows={4}
        value={props.draft}
        aria-describedby={error ? errorId : undefined}
        aria-invalid={error ? true : undefined}
        onInput={(e) => props.onInput(e.currentTarget.value)}
      />
      {props.children}
      <div class="actions">
        <button type="submit" class="button small" disabled={props.busy}>
          {props.submit}
        </button>
        <button type="button" class="button small quiet" onClick={props.onCancel}>
          Cancel
        </button>
      </div>
    </form>
  );
}
