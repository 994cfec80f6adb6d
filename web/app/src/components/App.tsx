import { useEffect, useState } from 'preact/hooks';
import { forgetInviteInUrl, inviteFromUrl } from '../invite';
import { openSaved } from '../session';
import { Storage } from '../storage';
import { holdDeviceLock } from '../tablock';
import { sentence } from '../text';
import { coreWhenReady, type KithDevice } from '../wasm';
import { JoinScreen } from './JoinScreen';
import { MainScreen } from './MainScreen';
import { Notice } from './Notice';
import { UpdateBanner } from './UpdateBanner';

type View =
  | { kind: 'starting' }
  | { kind: 'other-tab' }
  | { kind: 'join'; invite: string; storage: Storage }
  | { kind: 'no-invite' }
  | { kind: 'main'; device: KithDevice; storage: Storage; note?: string }
  | { kind: 'broken'; message: string };

export function App() {
  const [view, setView] = useState<View>({ kind: 'starting' });
  // The service worker is registered once the core has arrived: it then
  // caches the core from the browser's cache instead of downloading it a
  // second time while the member joins.
  const [coreReady, setCoreReady] = useState(false);

  useEffect(() => {
    let cancelled = false;
    const show = (v: View) => {
      if (!cancelled) setView(v);
    };
    (async () => {
      try {
        await holdDeviceLock(() => show({ kind: 'other-tab' }));
        show({ kind: 'starting' });
        const storage = await Storage.open();
        const saved = await storage.load();
        const invite = inviteFromUrl();
        // The core downloads and compiles meanwhile: the join screen needs
        // none of it until the member presses Join. Someone with neither a
        // saved device nor an invite is not made to download it.
        const core = saved || invite ? coreWhenReady(() => undefined) : undefined;
        core?.then(
          () => setCoreReady(true),
          () => undefined,
        );
        if (saved) {
          await core;
          const device = openSaved(saved);
          let note: string | undefined;
          if (invite) {
            // This phone has already joined; the link is not needed again.
            forgetInviteInUrl();
            note = 'This phone has already joined. You do not need the invite link again.';
          }
          show({ kind: 'main', device, storage, note });
        } else if (invite) {
          show({ kind: 'join', invite, storage });
        } else {
          show({ kind: 'no-invite' });
        }
      } catch (e) {
        show({ kind: 'broken', message: sentence(e) });
      }
    })();
    return () => {
      cancelled = true;
    };
  }, []);

  return (
    <>
      {coreReady && <UpdateBanner releaseKey={releaseKeyOf(view)} />}
      <Screen view={view} setView={setView} />
    </>
  );
}

/** The release key updates are checked against, once the view knows it. */
function releaseKeyOf(view: View): string | null | undefined {
  switch (view.kind) {
    case 'starting':
    case 'other-tab':
      return undefined;
    case 'main':
      return view.device.releaseKey() ?? null;
    default:
      return null;
  }
}

function Screen({ view, setView }: { view: View; setView: (v: View) => void }) {
  switch (view.kind) {
    case 'starting':
      return <Notice title="Kith">Opening Kith…</Notice>;
    case 'other-tab':
      return (
        <Notice title="Kith is open somewhere else">
          Kith is already open in another tab or window on this phone. Close it there, and Kith
          will open here.
        </Notice>
      );
    case 'no-invite':
      return (
        <Notice title="Welcome to Kith">
          Open the invite link you were sent to join.
        </Notice>
      );
    case 'broken':
      return (
        <Notice title="Kith could not open" action={{ label: 'Try again', onClick: () => location.reload() }}>
          {view.message}
        </Notice>
      );
    case 'join':
      return (
        <JoinScreen
          invite={view.invite}
          storage={view.storage}
          onJoined={(device) => {
            forgetInviteInUrl();
            setView({ kind: 'main', device, storage: view.storage });
          }}
        />
      );
    case 'main':
      return (
        <MainScreen
          device={view.device}
          storage={view.storage}
          note={view.note}
          onStorageError={(e) =>
            setView({
              kind: 'broken',
              message: `${sentence(e)} Kith stopped so nothing gets mixed up. What was saved before is safe.`,
            })
          }
        />
      );
  }
}
