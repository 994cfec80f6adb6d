import { useEffect, useState } from 'preact/hooks';
import { useRegisterSW } from 'virtual:pwa-register/preact';
import { checkRelease, type ReleaseVerdict } from '../release';

interface Props {
  /**
   * The release key the alliance pinned: a key, `null` when there is none
   * (or this phone has not joined), `undefined` while the device opens.
   */
  releaseKey: string | null | undefined;
}

/**
 * Registers the service worker. When a new version is ready it asks first,
 * so a reload never throws away a reflection that is being written; where
 * the alliance pinned a release key, it offers only a signed version, and
 * says so when what the server sends is not signed.
 */
export function UpdateBanner({ releaseKey }: Props) {
  const [registration, setRegistration] = useState<ServiceWorkerRegistration>();
  const {
    needRefresh: [needRefresh],
    updateServiceWorker,
  } = useRegisterSW({
    immediate: true,
    onRegisteredSW: (_url, r) => setRegistration(r),
  });
  // What the check found, and whether it was of an update (rather than of
  // the version running).
  const [verdict, setVerdict] = useState<{ found: ReleaseVerdict; ofUpdate: boolean }>();
  // Counts the updates the browser finished installing, so that each one is checked.
  const [installed, setInstalled] = useState(0);

  useEffect(() => {
    if (!registration) return;
    const onUpdate = () => {
      const worker = registration.installing;
      worker?.addEventListener('statechange', () => {
        if (worker.state === 'installed') setInstalled((n) => n + 1);
      });
    };
    registration.addEventListener('updatefound', onUpdate);
    return () => registration.removeEventListener('updatefound', onUpdate);
  }, [registration]);

  // Checks what the server sends now: at start (after asking the browser to
  // look for an update, so that an unchanged service worker is the one
  // running) and whenever an update is ready.
  useEffect(() => {
    if (typeof releaseKey !== 'string' || !registration) return;
    let stale = false;
    (async () => {
      await registration.update().catch(() => undefined);
      const update = registration.waiting ?? registration.installing;
      const worker = update ?? registration.active;
      if (!worker) return;
      const found = await checkRelease(releaseKey, worker.scriptURL);
      if (!stale) setVerdict({ found, ofUpdate: update !== null });
    })();
    return () => {
      stale = true;
    };
  }, [releaseKey, registration, needRefresh, installed]);

  if (releaseKey === undefined) return null;
  if (typeof releaseKey === 'string' && verdict?.found.kind === 'unsigned') {
    return (
      <div class="banner warning" role="alert">
        <p>
          {needRefresh || verdict.ofUpdate
            ? 'An update to Kith was not signed by your alliance, so Kith will not offer it. Keep using Kith as it is, and tell your steward.'
            : 'This copy of Kith was not signed by your alliance. Tell your steward before you write anything new.'}
        </p>
      </div>
    );
  }
  if (!needRefresh) return null;
  if (typeof releaseKey === 'string' && verdict?.found.kind !== 'signed') return null;
  return (
    <aside class="banner" aria-label="Update">
      <p>A new version of Kith is ready.</p>
      <button type="button" class="button small" onClick={() => void updateServiceWorker(true)}>
        Update now
      </button>
    </aside>
  );
}
