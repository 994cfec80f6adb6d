// Live updates while the app is open: one request stays open at the relay,
// which says when the alliance changed; then the Syncer runs. Nothing but the
// word "changed" travels on it: no ids, no content.
//
// What to do when (listen on the event stream, long-poll where a network holds
// streams back, pause and back off, stop when the device was removed) is
// decided by the core's live-update machine (core/src/live.rs), the same one
// `kith sync --watch` drives. This file only does the I/O:
//
// - the event stream: GET /v1/alliances/{a}/events read with fetch()
//   (EventSource cannot send the signature headers), with a watchdog for
//   silence;
// - long polls, pauses, and the Syncer;
// - only while the page is visible and the phone online, to spare the
//   battery: it halts when the page is hidden or the phone goes offline, and
//   starts again when both are back.
//
// The core signs every request anew: a signature is good for one use.

import {
  eventsRequest,
  LiveUpdates,
  waitRequest,
  type KithDevice,
  type LiveNext,
  type RelayRequest,
  type StreamEnded,
  type SyncOutcome,
} from './wasm';

/** What live updates ask of the Syncer. */
export interface SyncTrigger {
  /** Sync now, or right after the current run. */
  kick(): void;
  /** Sync now, and say when it is over how it went. */
  synced(): Promise<SyncOutcome>;
}

export class Live {
  private started = false;
  /** Aborted when live updates halt; undefined while halted. */
  private session: AbortController | undefined;
  private readonly machine = new LiveUpdates();

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
      void this.run(session.signal);
    }
  };

  private readonly onOnline = () => {
    // Perhaps another network, whose proxies let the stream through.
    this.machine.networkChanged();
    this.halt();
    this.update();
  };

  private halt() {
    this.session?.abort();
    this.session = undefined;
  }

  /** Does what the machine says, step after step, until halted or told to stop. */
  private async run(signal: AbortSignal): Promise<void> {
    let next: LiveNext = this.machine.start();
    while (!signal.aborted) {
      switch (next.step) {
        case 'listen':
          next = await this.listen(next.silenceMs, signal);
          break;
        case 'sync':
          next = this.machine.synced(await this.sync.synced()) ?? this.machine.resume();
          break;
        case 'poll':
          next = this.machine.polled(await this.poll(next.waitSecs, next.timeoutMs, signal));
          break;
        case 'pause':
          await sleep(next.ms, signal);
          next = this.machine.resume();
          break;
        case 'stop':
          // The relay refused this device for good; the status line shows why.
          this.stop();
          return;
      }
    }
  }

  /** Listens on the event stream until it ends or the machine says otherwise. */
  private async listen(silenceMs: number, signal: AbortSignal): Promise<LiveNext> {
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
      }, silenceMs);
    };
    const ended = (end: StreamEnded) => this.machine.streamEnded(end);
    watch();
    try {
      const resp = await this.open(eventsRequest(this.device), abort.signal);
      const type = resp.headers.get('content-type') ?? '';
      const isStream = type.startsWith('text/event-stream') && resp.body !== null;
      const instead = this.machine.opened(resp.status, isStream);
      if (instead || !resp.body) {
        await resp.body?.cancel();
        return instead ?? ended('broken');
      }
      const reader = resp.body.getReader();
      const decoder = new TextDecoder();
      let rest = '';
      let event = '';
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return ended('closed');
        if (value.length === 0) continue;
        heard = true;
        watch();
        const lines = (rest + decoder.decode(value, { stream: true })).split(/\r\n|\r|\n/);
        rest = lines.pop() ?? '';
        for (const line of lines) {
          if (line === '') {
            // A blank line ends an event. The sync runs beside the stream;
            // a refusal reaches the machine through the Syncer's next run.
            if (event && this.machine.event(event)) this.syncBeside();
            event = '';
          } else if (line.startsWith('event:')) {
            event = line.slice('event:'.length).trim();
          }
          // Comments (keep-alives) and data lines carry nothing we need.
        }
      }
    } catch {
      if (silent) return ended(heard ? 'silent-after-bytes' : 'silent-from-start');
      return ended('broken');
    } finally {
      clearTimeout(watchdog);
      signal.removeEventListener('abort', cancel);
      abort.abort();
    }
  }

  /** A sync while the stream stays open; a refusal for good stops live updates. */
  private syncBeside() {
    void this.sync.synced().then((outcome) => {
      if (outcome === 'refused' && this.machine.synced(outcome)?.step === 'stop') this.stop();
    });
  }

  /** One long poll; the relay's status, or undefined if none came. */
  private async poll(waitSecs: number, timeoutMs: number, signal: AbortSignal): Promise<number | undefined> {
    const abort = new AbortController();
    const cancel = () => abort.abort();
    signal.addEventListener('abort', cancel);
    const timer = setTimeout(cancel, timeoutMs);
    try {
      const resp = await this.open(waitRequest(this.device, waitSecs), abort.signal);
      await resp.arrayBuffer();
      return resp.status;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', cancel);
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
