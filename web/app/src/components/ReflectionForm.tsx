import { useMemo, useRef, useState } from 'preact/hooks';
import type { Storage } from '../storage';
import { errorCode, sentence } from '../text';
import { contribute, profile, type Audience, type KithDevice } from '../wasm';
import { AudienceChoice } from './AudienceChoice';

interface Props {
  device: KithDevice;
  storage: Storage;
  onSaved: () => void;
  onStorageError: (error: unknown) => void;
}

/** Writes a reflection. It is encrypted and stored on the phone at once. */
export function ReflectionForm({ device, storage, onSaved, onStorageError }: Props) {
  const [text, setText] = useState('');
  // The safer choice first: a member widens it on purpose.
  const [audience, setAudience] = useState<Audience>('research');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const box = useRef<HTMLTextAreaElement>(null);
  const newcomersRead = useMemo(() => profile(device).newcomersReadEarlier, [device]);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (busy) return;
    if (!text.trim()) {
      setError('Write something first.');
      box.current?.focus();
      return;
    }
    setError('');
    let ops;
    try {
      ops = contribute(device, text, audience).ops;
    } catch (e) {
      // A newcomer's group key arrives with their next sync.
      setError(
        errorCode(e) === 'sync_first'
          ? 'This phone does not have the key for that yet. Kith gets it the next time it reaches the server; try again in a moment. Your text is still here.'
          : sentence(e),
      );
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
    setText('');
    onSaved();
    box.current?.focus();
  };

  return (
    <form class="stack write" onSubmit={submit} noValidate>
      <label id="write-label" for="reflection" class="label">
        Write a reflection
      </label>
      <p id="reflection-hint" class="hint">
        Kith locks it on this phone before saving or sending it. Only the people you choose below can read it.
      </p>
      <textarea
        id="reflection"
        ref={box}
        class="input text"
        name="reflection"
        rows={5}
        autoComplete="off"
        value={text}
        aria-describedby={error ? 'reflection-hint reflection-error' : 'reflection-hint'}
        aria-invalid={error ? true : undefined}
        onInput={(e) => setText(e.currentTarget.value)}
      />
      <AudienceChoice name="audience" value={audience} onChange={setAudience} newcomersRead={newcomersRead} />
      <button type="submit" class="button" disabled={busy}>
        Save
      </button>
      <p id="reflection-error" class="error" role="alert">
        {error}
      </p>
    </form>
  );
}
