import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { Live } from '../live';
import { statusText } from '../status';
import type { Storage } from '../storage';
import { Syncer, type SyncState } from '../sync';
import { contributions, profile, researchTeam, type Contribution, type KithDevice } from '../wasm';
import { ReflectionForm } from './ReflectionForm';
import { ReflectionList } from './ReflectionList';
import { ResearchTeam } from './ResearchTeam';

interface Props {
  device: KithDevice;
  storage: Storage;
  note?: string;
  onStorageError: (error: unknown) => void;
}

export function MainScreen({ device, storage, note, onStorageError }: Props) {
  const me = useMemo(() => profile(device), [device]);
  const [items, setItems] = useState<Contribution[]>(() => contributions(device));
  const [pending, setPending] = useState(() => device.pendingUploads());
  const [sync, setSync] = useState<SyncState>({ phase: 'idle' });
  const [online, setOnline] = useState(() => navigator.onLine);
  // Items a sync refused (altered on the way, or against the alliance's
  // rules): each is said once by the core, so the page keeps the count.
  const [refused, setRefused] = useState(0);
  const refusals = useRef(new Set<string>());
  const syncer = useRef<Syncer | undefined>(undefined);

  const refresh = () => {
    setItems(contributions(device));
    setPending(device.pendingUploads());
  };

  useEffect(() => {
    const s = new Syncer(
      device,
      me.relay,
      storage,
      (state) => {
        setSync(state);
        // Each refusal names its blob: one said twice counts once.
        for (const said of state.last?.rejected ?? []) refusals.current.add(said);
        setRefused(refusals.current.size);
        refresh();
      },
      onStorageError,
    );
    syncer.current = s;
    s.start();
    // The relay says when something changed; then the syncer runs.
    const live = new Live(device, me.relay, s);
    live.start();
    const up = () => setOnline(true);
    const down = () => setOnline(false);
    window.addEventListener('online', up);
    window.addEventListener('offline', down);
    return () => {
      live.stop();
      s.stop();
      window.removeEventListener('online', up);
      window.removeEventListener('offline', down);
    };
  }, [device]);

  const saved = () => {
    refresh();
    syncer.current?.kick();
  };

  return (
    <>
      <header class="top">
        <p class="brand" aria-hidden="true">
          Kith
        </p>
        <h1 class="alliance">{me.allianceName}</h1>
        <p class="me">
          You are <strong>{me.pseudonym}</strong>
        </p>
      </header>
      <main class="page">
        {note && <p class="note">{note}</p>}
        {refused > 0 && (
          <p class="note warning" role="alert">
            {refused === 1
              ? 'Kith did not show 1 item from the server: it was changed on the way, or written in a way this alliance does not allow.'
              : `Kith did not show ${refused} items from the server: they were changed on the way, or written in a way this alliance does not allow.`}{' '}
            Nothing of it was kept. Please tell your steward.
          </p>
        )}
        <ReflectionForm device={device} storage={storage} onSaved={saved} onStorageError={onStorageError} />
        <p class="status" role="status" aria-live="polite" data-phase={sync.phase} data-pending={pending}>
          {statusText(sync, pending, online)}
        </p>
        <ReflectionList
          items={items}
          device={device}
          storage={storage}
          onChanged={saved}
          onStorageError={onStorageError}
        />
        <ResearchTeam fingerprints={researchTeam(device)} />
      </main>
    </>
  );
}
