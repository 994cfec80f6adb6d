import { useRegisterSW } from 'virtual:pwa-register/preact';

/**
 * Registers the service worker. When a new version is ready it asks first,
 * so a reload never throws away a reflection that is being written.
 */
export function UpdateBanner() {
  const {
    needRefresh: [needRefresh],
    updateServiceWorker,
  } = useRegisterSW({ immediate: true });

  if (!needRefresh) return null;
  return (
    <aside class="banner" aria-label="Update">
      <p>A new version of Kith is ready.</p>
      <button type="button" class="button small" onClick={() => void updateServiceWorker(true)}>
        Update now
      </button>
    </aside>
  );
}
