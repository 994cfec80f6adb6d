// Drives the core's sans-IO sync: one run at a time; retries with backoff
// when offline or when the relay fails; runs on start, after each save, when
// the phone comes back online, and whenever the relay's live updates say
// something changed (live.ts). A regular run every 5 minutes while the app is
// open and visible is only a safety net, for when live updates cannot get
// through.

import { OfflineError, send } from './relay';
import type { Storage } from './storage';
import { nextRequest, receive, refusedForGood, type KithDevice, type SyncOutcome, type SyncReport } from './wasm';

export type SyncPhase =
  /** Not running and nothing has gone wrong. */
  | 'idle'
  /** A run is in progress. */
  | 'running'
  /** The last run could not reach the relay. */
  | 'offline'
  /** The relay refused the last run. */
  | 'failed';

export interface SyncState {
  phase: SyncPhase;
  /** The relay's message when phase is "failed". */
  error?: string;
  /** The last finished run. */
  last?: SyncReport;
}

const POLL_MS = 5 * 60_000;
const FIRST_RETRY_MS = 2_000;
const MAX_RETRY_MS = 60_000;

export class Syncer {
  private state: SyncState = { phase: 'idle' };
  private running = false;
  private again = false;
  private failures = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private pollTimer: ReturnType<typeof setInterval> | undefined;
  private stopped = true;
  /** Told, at the end of the current run, whether it went through. */
  private waiters: ((outcome: SyncOutcome) => void)[] = [];

  constructor(
    private readonly device: KithDevice,
    private readonly relay: string,
    private readonly storage: Storage,
    /** Told after every change of state and every stored step. */
    private readonly onChange: (state: SyncState) => void,
    /** Told when storing fails; the app cannot go on safely. */
    private readonly onStorageError: (error: unknown) => void,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    document.addEventListener('visibilitychange', this.onVisible);
    this.pollTimer = setInterval(this.onPoll, POLL_MS);
    this.kick();
  }

  stop(): void {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    document.removeEventListener('visibilitychange', this.onVisible);
    clearInterval(this.pollTimer);
    clearTimeout(this.retryTimer);
  }

  /** Starts a run now, or another one right after the current run. */
  kick(): void {
    if (this.stopped) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.running) {
      this.again = true;
      return;
    }
    void this.run();
  }

  /**
   * Starts a run like `kick()`, and resolves when a run that began after
   * this call is over: whether it went through, failed for now, or was
   * refused for good (the device was removed).
   */
  synced(): Promise<SyncOutcome> {
    if (this.stopped) return Promise.resolve('failed');
    const done = new Promise<SyncOutcome>((resolve) => this.waiters.push(resolve));
    this.kick();
    return done;
  }

  private readonly onOnline = () => {
    this.failures = 0;
    this.kick();
  };

  private readonly onVisible = () => {
    if (document.visibilityState === 'visible' && this.retryTimer === undefined) this.kick();
  };

  /** A regular check for new reflections, unless a retry is already planned. */
  private readonly onPoll = () => {
    if (document.visibilityState === 'visible' && !this.running && this.retryTimer === undefined) {
      this.kick();
    }
  };

  private set(state: SyncState) {
    this.state = state;
    this.onChange(state);
  }

  private async run(): Promise<void> {
    this.running = true;
    let outcome: SyncOutcome = 'failed';
    this.set({ ...this.state, phase: 'running', error: undefined });
    try {
      do {
        this.again = false;
        const report = await this.once();
        this.failures = 0;
        this.set({ phase: 'running', last: report });
      } while (this.again && !this.stopped);
      if (!this.again) outcome = 'done';
      this.set({ ...this.state, phase: 'idle' });
    } catch (e) {
      if (e instanceof OfflineError) {
        this.set({ ...this.state, phase: 'offline' });
        this.retryLater();
      } else if (e instanceof StorageFailure) {
        this.stop();
        this.set({ ...this.state, phase: 'failed', error: 'could not save on this phone' });
        this.onStorageError(e.reason);
      } else {
        const message = e instanceof Error ? e.message : String(e);
        if (refusedForGood(e)) outcome = 'refused';
        this.set({ ...this.state, phase: 'failed', error: message });
        this.retryLater();
      }
    } finally {
      this.running = false;
      const waiting = this.waiters;
      this.waiters = [];
      for (const resolve of waiting) resolve(outcome);
    }
  }

  /** One sync run; stores every step before the next request. */
  private async once(): Promise<SyncReport> {
    this.device.syncStart();
    for (;;) {
      const req = nextRequest(this.device);
      if (!req) throw new Error('the sync stopped before it was done');
      const answer = await send(this.relay, req);
      const step = receive(this.device, answer.status, answer.body);
      try {
        await this.storage.applyOps(step.ops);
      } catch (cause) {
        throw new StorageFailure(cause);
      }
      // Let the screen show what arrived, and the pending count.
      this.onChange(this.state);
      if (step.finished) return step.finished;
    }
  }

  private retryLater() {
    if (this.stopped) return;
    const base = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.failures);
    this.failures += 1;
    // Some jitter, so many phones coming back online do not all call at once.
    const delay = Math.round(base * (0.75 + Math.random() * 0.25));
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.kick();
    }, delay);
  }

  current(): SyncState {
    return this.state;
  }
}

class StorageFailure extends Error {
  constructor(readonly reason: unknown) {
    super('could not save on this phone');
  }
}
