import { useRef, useState } from 'preact/hooks';
import { JoinAttempt } from '../session';
import type { Storage } from '../storage';
import { errorCode, sentence } from '../text';
import { coreLoaded, coreWhenReady, watchCoreProgress, type KithDevice } from '../wasm';

interface Props {
  invite: string;
  storage: Storage;
  onJoined: (device: KithDevice) => void;
}

export function JoinScreen({ invite, storage, onJoined }: Props) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState('');
  // While the core is still on its way: how far it has got, and whether it is trying again.
  const [preparing, setPreparing] = useState('');
  const [retrying, setRetrying] = useState('');
  const attempt = useRef(new JoinAttempt());
  const input = useRef<HTMLInputElement>(null);

  const submit = async (event: Event) => {
    event.preventDefault();
    if (busy) return;
    if (!name.trim()) {
      setError('Please choose a name first.');
      input.current?.focus();
      return;
    }
    setBusy(true);
    setError('');
    try {
      if (!coreLoaded()) {
        const stop = watchCoreProgress((fraction) =>
          setPreparing(`Getting ready… ${Math.round(fraction * 100)}%`),
        );
        try {
          await coreWhenReady(setRetrying);
        } finally {
          stop();
          setPreparing('');
          setRetrying('');
        }
      }
      const device = await attempt.current.join(invite, name, storage);
      onJoined(device);
    } catch (e) {
      setError(`Could not join. ${sentence(e)}`);
      setBusy(false);
      // A taken name: the box to change is the one to be in.
      if (errorCode(e) === 'name_taken') input.current?.select();
    }
  };

  return (
    <main class="page">
      <h1>Join your group on Kith</h1>
      <p class="lead">
        You were invited to a learning alliance. What you write is locked on this phone before it
        is sent. Only your group and the research team can read it.
      </p>
      <form class="stack" onSubmit={submit} noValidate>
        <label for="pseudonym" class="label">
          Choose a name others will see (not your real name)
        </label>
        <input
          id="pseudonym"
          ref={input}
          class="input"
          type="text"
          name="pseudonym"
          autoComplete="off"
          autoCapitalize="words"
          spellcheck={false}
          maxLength={64}
          required
          value={name}
          aria-invalid={error ? true : undefined}
          aria-describedby={error ? 'join-error' : undefined}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <button type="submit" class="button" disabled={busy} aria-busy={busy}>
          {busy ? preparing || 'Joining…' : 'Join'}
        </button>
        <p class="hint" role="status">
          {retrying}
        </p>
        <p id="join-error" class="error" role="alert">
          {error}
        </p>
      </form>
    </main>
  );
}
