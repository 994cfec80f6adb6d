// The device's saved data in IndexedDB: one "state" record (the core's
// encoded state, which holds this device's keys), the "replica" (what the
// device has read, sealed by the core to the device's own key) and the
// encrypted blobs the replica does not hold yet. No plaintext reflection is
// ever written here.

import { openDB, type DBSchema, type IDBPDatabase } from 'idb';
import type { StoreOp } from './wasm';

const DB_NAME = 'kith';
const DB_VERSION = 1;
const STATE_KEY = 'device';
const REPLICA_KEY = 'replica';

interface KithDB extends DBSchema {
  state: { key: string; value: Uint8Array };
  blobs: { key: string; value: Uint8Array };
}

export interface Saved {
  state: Uint8Array;
  replica: Uint8Array | undefined;
  blobs: Uint8Array[];
}

export class Storage {
  private tail: Promise<void> = Promise.resolve();
  private broken: unknown;

  private constructor(private readonly db: IDBPDatabase<KithDB>) {}

  static async open(): Promise<Storage> {
    const db = await openDB<KithDB>(DB_NAME, DB_VERSION, {
      upgrade(db) {
        db.createObjectStore('state');
        db.createObjectStore('blobs');
      },
    });
    return new Storage(db);
  }

  /** The saved device, or undefined if this browser has not joined yet. */
  async load(): Promise<Saved | undefined> {
    const tx = this.db.transaction(['state', 'blobs'], 'readonly');
    const [state, replica, blobs] = await Promise.all([
      tx.objectStore('state').get(STATE_KEY),
      tx.objectStore('state').get(REPLICA_KEY),
      tx.objectStore('blobs').getAll(),
    ]);
    await tx.done;
    return state ? { state, replica, blobs } : undefined;
  }

  /**
   * Writes the core's ops in order, all in one transaction. Calls are queued,
   * so ops are written in the order they were made. After one write fails,
   * every later one is refused: a later state record may point at a blob the
   * failed write would have stored, and the last good state must stay usable.
   */
  applyOps(ops: StoreOp[]): Promise<void> {
    const write = async () => {
      if (this.broken !== undefined) throw this.broken;
      if (ops.length === 0) return;
      try {
        const tx = this.db.transaction(['state', 'blobs'], 'readwrite');
        const state = tx.objectStore('state');
        const blobs = tx.objectStore('blobs');
        const puts = ops.map((op) => {
          switch (op.kind) {
            case 'blob':
              return blobs.put(op.bytes, op.id);
            case 'state':
              return state.put(op.bytes, STATE_KEY);
            case 'replica':
              return state.put(op.bytes, REPLICA_KEY);
            case 'delete':
              return blobs.delete(op.id);
          }
        });
        await Promise.all([...puts, tx.done]);
      } catch (e) {
        this.broken = e;
        throw e;
      }
    };
    const done = this.tail.then(write);
    this.tail = done.catch(() => undefined);
    return done;
  }
}

/** Asks the browser not to clear our data when space runs low. */
export async function askToKeepData(): Promise<void> {
  try {
    if (navigator.storage?.persist && !(await navigator.storage.persisted())) {
      await navigator.storage.persist();
    }
  } catch {
    // Not every browser allows this; the app works without it.
  }
}
