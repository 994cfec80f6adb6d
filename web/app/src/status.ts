// The one line that tells people whether their reflections have left the phone.

import type { SyncState } from './sync';
import { reflections } from './text';

export function statusText(sync: SyncState, pending: number, online: boolean): string {
  const offline = !online || sync.phase === 'offline';
  if (pending === 0) {
    if (sync.phase === 'failed' && sync.error) {
      return `All sent. Could not check for new reflections: ${sync.error}`;
    }
    return offline ? 'All sent. You are offline now.' : 'All sent.';
  }
  const waiting = pending === 1 ? 'It' : reflections(pending);
  if (offline) return `Saved on this phone. ${waiting} will be sent when you are online.`;
  if (sync.phase === 'running') return `Saved on this phone. Sending ${reflections(pending)}…`;
  if (sync.phase === 'failed') {
    return `Saved on this phone. Not sent yet: ${sync.error ?? 'the server did not answer'}. Kith will try again soon.`;
  }
  return `Saved on this phone. ${waiting} will be sent soon.`;
}
