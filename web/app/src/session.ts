// Opening the saved device, and joining an alliance from an invite.

import { OfflineError, send } from './relay';
import { askToKeepData, type Saved, type Storage } from './storage';
import { Joining, KithDevice, finishJoin, joinNext } from './wasm';

/** The device saved in this browser (the core must have loaded). */
export function openSaved(saved: Saved): KithDevice {
  return KithDevice.load(saved.state, saved.replica, saved.blobs);
}

/**
 * A join in progress. Kept between tries, so that if an answer was lost on
 * the way the same device can ask again (the relay gives the same answer to
 * the same device).
 */
export class JoinAttempt {
  private joining: Joining | undefined;
  private invite = '';
  private name = '';

  /** Joins; throws an Error with a message for the person on failure. */
  async join(invite: string, pseudonym: string, storage: Storage): Promise<KithDevice> {
    if (!this.joining || this.invite !== invite) {
      this.joining?.free();
      this.joining = undefined;
      this.joining = new Joining(invite, pseudonym);
      this.invite = invite;
      this.name = pseudonym.trim();
    } else if (this.name !== pseudonym.trim()) {
      // Another name (the first was taken, say): the same device asks
      // again, so the invite it was given is not lost.
      this.joining.rename(pseudonym);
      this.name = pseudonym.trim();
    }
    const joining = this.joining;
    try {
      // Redeem the invite, then add this device to the membership; the core
      // starts over by itself if the membership changed in between.
      for (let req = joinNext(joining); req; req = joinNext(joining)) {
        const answer = await send(joining.relay(), req);
        joining.receive(answer.status, answer.body);
      }
    } catch (e) {
      // Keep this device's keys: trying again repeats the step that failed.
      if (e instanceof OfflineError) {
        throw new Error('Kith could not reach the server. Check that you are online, then try again.');
      }
      throw e;
    }
    this.joining = undefined;
    let joined;
    try {
      joined = finishJoin(joining);
    } finally {
      joining.free();
    }
    const { device, ops } = joined;
    await storage.applyOps(ops);
    void askToKeepData();
    return device;
  }
}
