// Opening the saved device, and joining an alliance from an invite.

import { OfflineError, send } from './relay';
import { askToKeepData, type Storage } from './storage';
import { Joining, KithDevice, finishJoin, joinRequest } from './wasm';

/** The device saved in this browser, or undefined. */
export async function openSaved(storage: Storage): Promise<KithDevice | undefined> {
  const saved = await storage.load();
  if (!saved) return undefined;
  return KithDevice.load(saved.state, saved.blobs);
}

/**
 * A join in progress. Kept between tries, so that if the relay's answer was
 * lost on the way the same device can ask again (the relay gives the same
 * answer to the same device).
 */
export class JoinAttempt {
  private joining: Joining | undefined;
  private key = '';

  /** Joins; throws an Error with a message for the person on failure. */
  async join(invite: string, pseudonym: string, storage: Storage): Promise<KithDevice> {
    const key = `${invite}\n${pseudonym.trim()}`;
    if (!this.joining || this.key !== key) {
      this.joining?.free();
      this.joining = undefined;
      this.joining = new Joining(invite, pseudonym);
      this.key = key;
    }
    const joining = this.joining;
    let answer;
    try {
      answer = await send(joining.relay(), joinRequest(joining));
    } catch (e) {
      if (e instanceof OfflineError) {
        throw new Error('Kith could not reach the server. Check that you are online, then try again.');
      }
      throw e;
    }
    // finish() uses up the Joining, whether it works or not.
    this.joining = undefined;
    let joined;
    try {
      joined = finishJoin(joining, answer.status, answer.body);
    } finally {
      joining.free();
    }
    const { device, ops } = joined;
    await storage.applyOps(ops);
    void askToKeepData();
    return device;
  }
}
