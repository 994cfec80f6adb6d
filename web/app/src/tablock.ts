// Only one tab may use the device at a time: two tabs would each hold their
// own copy in memory and overwrite each other's saved state.

const LOCK = 'kith-device';

/**
 * Resolves once this tab holds the lock (it keeps it until the tab closes).
 * Calls onWaiting first if another tab has it.
 */
export function holdDeviceLock(onWaiting: () => void): Promise<void> {
  if (!('locks' in navigator)) return Promise.resolve();
  const forever = () => new Promise<never>(() => undefined);
  return new Promise((resolve) => {
    void navigator.locks.request(LOCK, { ifAvailable: true }, (lock) => {
      if (lock) {
        resolve();
        return forever();
      }
      onWaiting();
      void navigator.locks.request(LOCK, () => {
        resolve();
        return forever();
      });
      return undefined;
    });
  });
}
