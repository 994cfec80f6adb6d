// Live updates while the app is open: one request stays open at the relay,
// which says when the alliance changed; then the Syncer runs. Nothing but the
// word "changed" travels on it: no ids, no content. The same behaviour as the
// CLI's `kith sync --watch` (cli/src/watch.rs):
//
// - Server-sent events from GET /v1/alliances/{a}/events, read with fetch()
//   (EventSource cannot send the signature headers). Sync at `ready` (so
//   nothing between the last sync and the stream is missed) and at each
//   `changed`; at `removed` sync too, which shows the relay's message.
// - Where a network holds streamed answers back (the stream is refused, is not
//   an event stream, or not a byte arrives, not even a keep-alive, within 45 s)
//   long polls instead: sync, then wait at the relay until something arrives
//   or 25 s pass; again and again.
// - Only while the page is visible and the phone online, to spare the
//   battery: it stops when the page is hidden or the phone goes offline, and
//   starts again when both are back.
// - A stream that ends (the relay ends each after 10 minutes) is opened again
//   after about a second; after errors it waits 2 s, doubling up to 60 s.
// - The core signs every request anew: a signature is good for one use.

import { eventsRequest, waitRequest, type KithDevice, type RelayRequest } from './wasm';

/** What live updates ask of the Syncer. */
export interface SyncTrigger {
  /** Sync now, or right after the current run. */
  kick(): void;
  /** Sync now, and say when it is over whether it went through. */
  synced(): Promise<boolean>;
}

const RECONNECT_MS = 1_000;
const FIRST_RETRY_MS = 2_000;
const MAX_RETRY_MS = 60_000;
/**
 * The relay sends a keep-alive every 20 s. Not a byte for this long: before
 * the first byte, a proxy holds the stream back (long poll instead); after it,
 * the connection died (open another).
 */
const SILENCE_MS = 45_000;
/** A stream that ends sooner than this after opening counts as a failure. */
const SHORT_STREAM_MS = 10_000;
/** How long a long poll waits at the relay. */
const POLL_WAIT_SECS = 25;
/** How long a long poll may take before the connection counts as broken. */
const POLL_TIMEOUT_MS = (POLL_WAIT_SECS + 20) * 1_000;
/** The least time between two long polls. */
const POLL_SPACING_MS = 1_000;

/** How the app hears of changes. */
type Mode = 'stream' | 'poll';

/** Why a stream stopped. */
type Stopped =
  /** It ended (its time was up, or the relay restarted): open another. */
  | 'ended'
  /** This relay, or a proxy on the way, does not let the stream through. */
  | 'no-stream';

export class Live {
  private started = false;
  /** Aborted when live updates stop; undefined while stopped. */
  private session: AbortController | undefined;
  private mode: Mode = 'stream';
  private pause = FIRST_RETRY_MS;

  constructor(
    private readonly device: KithDevice,
    private readonly relay: string,
    private readonly sync: SyncTrigger,
  ) {}

  start(): void {
    if (this.started) return;
    this.started = true;
    document.addEventListener('visibilitychange', this.update);
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.update);
    this.update();
  }

  stop(): void {
    this.started = false;
    document.removeEventListener('visibilitychange', this.update);
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.update);
    this.halt();
  }

  /** Listens while started, visible and online; otherwise not. */
  private readonly update = () => {
    const wanted = this.started && document.visibilityState === 'visible' && navigator.onLine;
    if (!wanted) {
      this.halt();
    } else if (!this.session) {
      const session = new AbortController();
      this.session = session;
      this.pause = FIRST_RETRY_MS;
      void this.loop(session.signal);
    }
  };

  private readonly onOnline = () => {
    // Perhaps another network, whose proxies let the stream through.
    this.mode = 'stream';
    this.halt();
    this.update();
  };

  private halt() {
    this.session?.abort();
    this.session = undefined;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      try {
        if (this.mode === 'poll') {
          await this.poll(signal);
          continue;
        }
        const opened = Date.now();
        const stopped = await this.listen(signal);
        if (stopped === 'no-stream') {
          this.mode = 'poll';
          continue;
        }
        if (Date.now() - opened < SHORT_STREAM_MS) throw new Error('the stream ended at once');
        this.pause = FIRST_RETRY_MS;
        await sleep(jitter(RECONNECT_MS, 0.5), signal);
      } catch {
        if (signal.aborted) return;
        // Some jitter, so many phones do not all call back at once.
        await sleep(jitter(this.pause, 0.25), signal);
        this.pause = Math.min(MAX_RETRY_MS, this.pause * 2);
      }
    }
  }

  /** Listens on the event stream, syncing at `ready` and at each `changed`. */
  private async listen(signal: AbortSignal): Promise<Stopped> {
    const abort = new AbortController();
    const cancel = () => abort.abort();
    signal.addEventListener('abort', cancel);
    let heard = false;
    let silent = false;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const watch = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        silent = true;
        abort.abort();
      }, SILENCE_MS);
    };
    watch();
    try {
      const resp = await this.open(eventsRequest(this.device), abort.signal);
      const type = resp.headers.get('content-type') ?? '';
      if (resp.status === 401 || resp.status === 403) {
        await resp.body?.cancel();
        // The sync says why, in the relay's words.
        this.sync.kick();
        throw new Error(`the relay refused live updates (${resp.status})`);
      }
      if (!resp.ok || !type.startsWith('text/event-stream') || !resp.body) {
        await resp.body?.cancel();
        return 'no-stream';
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let rest = '';
      let event = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return 'ended';
        if (value.length === 0) continue;
        heard = true;
        watch();
        const lines = (rest + decoder.decode(value, { stream: true })).split(/\r\n|\r|\n/);
        rest = lines.pop() ?? '';
        for (const line of lines) {
          if (line === '') {
            // A blank line ends an event.
            if (event) this.onEvent(event);
            event = '';
          } else if (line.startsWith('event:')) {
            event = line.slice('event:'.length).trim();
          }
          // Comments (keep-alives) and data lines carry nothing we need.
        }
      }
    } catch (e) {
      if (silent) return heard ? 'ended' : 'no-stream';
      throw e;
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener('abort', cancel);
      abort.abort();
    }
  }

  private onEvent(event: string) {
    // At `removed` too: the sync then fails with the relay's own explanation,
    // which the status line shows.
    if (event === 'ready' || event === 'changed' || event === 'removed') this.sync.kick();
  }

  /** Long polls: sync, then wait at the relay for something new; again and again. */
  private async poll(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      if (!(await this.sync.synced())) throw new Error('the sync did not go through');
      if (signal.aborted) return;
      const started = Date.now();
      const abort = new AbortController();
      const cancel = () => abort.abort();
      signal.addEventListener('abort', cancel);
      const timer = setTimeout(cancel, POLL_TIMEOUT_MS);
      try {
        const resp = await this.open(waitRequest(this.device, POLL_WAIT_SECS), abort.signal);
        await resp.arrayBuffer();
        if (resp.status === 401 || resp.status === 403) {
          this.sync.kick();
          throw new Error(`the relay refused the long poll (${resp.status})`);
        }
        if (!resp.ok) throw new Error(`the relay answered ${resp.status}`);
      } finally {
        clearTimeout(timer);
        signal.removeEventListener('abort', cancel);
      }
      this.pause = FIRST_RETRY_MS;
      const spent = Date.now() - started;
      if (spent < POLL_SPACING_MS) await sleep(POLL_SPACING_MS - spent, signal);
    }
  }

  /** Sends one request the core signed; the answer's body is left to read. */
  private open(req: RelayRequest, signal: AbortSignal): Promise<Response> {
    return fetch(this.relay.replace(/\/+$/, '') + req.path, {
      method: req.method,
      headers: req.headers,
      body: req.body.length > 0 ? req.body : undefined,
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
      signal,
    });
  }
}

/** `ms`, give or take up to `spread` of it (a fraction). */
function jitter(ms: number, spread: number): number {
  return Math.round(ms * (1 - spread + Math.random() * spread * 2));
}

/** Waits `ms`, or less if `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
