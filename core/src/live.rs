//! Live updates: when to listen, long-poll, sync and pause. One sans-IO
//! machine, driven by `kith sync --watch` (cli/src/watch.rs) and by the app
//! (web/app/src/live.ts), so both behave alike:
//!
//! - Listen on the relay's event stream (`Client::events_request`); sync at
//!   `ready` (nothing between the last sync and the stream is missed), at
//!   each `changed`, and at `removed` (the sync then fails with the relay's
//!   own words).
//! - Where a network holds streamed answers back (the stream is refused, is
//!   not an event stream, or not a byte arrives within [`SILENCE_MS`], not
//!   even a keep-alive), long-poll instead: sync, then wait at the relay
//!   (`Client::wait_request`) until something arrives or
//!   [`POLL_WAIT_SECS`] pass; again and again. A new network tries the
//!   stream again ([`Live::network_changed`]).
//! - A stream that ends after a while (the relay ends each after 10 minutes)
//!   is opened again after about a second; one that ends at once, and every
//!   error, waits 2 s, doubling up to 60 s, with some jitter so many phones
//!   do not all call back at once.
//! - A sync the relay refuses for good (the device was removed, or is not
//!   known) stops the machine.
//!
//! Each method takes what happened and answers the next [`LiveStep`].

/// Not a byte from the stream for this long (the relay sends a keep-alive
/// every 20 s): before the first byte, a proxy holds the stream back (long
/// poll instead); after it, the connection died (open another).
pub const SILENCE_MS: u64 = 45_000;
/// How long a long poll waits at the relay.
pub const POLL_WAIT_SECS: u64 = 25;
/// How long a long poll may take before the connection counts as broken.
pub const POLL_TIMEOUT_MS: u64 = (POLL_WAIT_SECS + 20) * 1_000;

const RECONNECT_MS: u64 = 1_000;
const FIRST_RETRY_MS: u64 = 2_000;
const MAX_RETRY_MS: u64 = 60_000;
/// A stream that ends sooner than this after opening counts as a failure.
const SHORT_STREAM_MS: u64 = 10_000;
/// The least time between the starts of two long polls.
const POLL_SPACING_MS: u64 = 1_000;

/// What the driver does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveStep {
    /// Open the event stream; report [`Live::opened`], then each event
    /// ([`Live::event`]) and how the stream ended ([`Live::stream_ended`]),
    /// counting `silence_ms` without a byte as [`StreamEnd::Silent`].
    Listen {
        /// How long the stream may stay silent.
        silence_ms: u64,
    },
    /// Sync now; report [`Live::synced`].
    Sync,
    /// Send a long poll that waits `wait_secs` at the relay, giving up after
    /// `timeout_ms`; report [`Live::polled`].
    Poll {
        /// Seconds for the relay to wait.
        wait_secs: u64,
        /// When to count the connection as broken.
        timeout_ms: u64,
    },
    /// Wait `ms`, then call [`Live::resume`].
    Pause {
        /// How long.
        ms: u64,
    },
    /// Stop listening: the relay refused this device for good (the last
    /// sync's error says why).
    Stop,
}

/// How a sync went, as the driver reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncResult {
    /// It went through.
    Done,
    /// It failed for now (offline, relay busy or down): try again later.
    Failed,
    /// The relay refused the device for good (removed, or not known).
    Refused,
}

/// How an event stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    /// The relay closed it.
    Closed,
    /// Not a byte for [`SILENCE_MS`]; `heard` is whether any byte came before.
    Silent {
        /// Whether any byte arrived before the silence.
        heard: bool,
    },
    /// The connection broke.
    Broken,
}

/// How the machine hears of changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The relay's event stream.
    Stream,
    /// Long polls (the stream does not get through here).
    Poll,
}

/// What the machine waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Not started, or stopped.
    Idle,
    /// The stream was asked for (or is open) since `since`.
    Listening { since: u64 },
    /// A sync runs; then `then`.
    Syncing { then: AfterSync },
    /// A long poll started at `since` is out.
    Polling { since: u64 },
    /// A pause runs.
    Pausing,
}

/// What follows a sync the machine asked for (outside a stream).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterSync {
    /// A long poll.
    Poll,
    /// A pause, as after an error (the sync was only to let the relay say
    /// why it refused a stream or a poll).
    Backoff,
}

/// The live-update machine.
#[derive(Clone, Debug)]
pub struct Live {
    mode: Mode,
    phase: Phase,
    /// The next pause after an error.
    retry_ms: u64,
    /// A small generator for jitter (not for anything secret).
    jitter: u64,
}

impl Live {
    /// A machine that hears of changes by `mode` first; `seed` varies the
    /// jitter between devices.
    pub fn new(seed: u64, mode: Mode) -> Self {
        Self {
            mode,
            phase: Phase::Idle,
            retry_ms: FIRST_RETRY_MS,
            jitter: seed | 1,
        }
    }

    /// How it hears of changes now.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Starts (or starts again, after the driver stopped for a while).
    pub fn start(&mut self, now: u64) -> LiveStep {
        self.retry_ms = FIRST_RETRY_MS;
        self.begin(now)
    }

    /// The device is on another network, whose proxies may let the stream
    /// through: the next start listens again.
    pub fn network_changed(&mut self) {
        self.mode = Mode::Stream;
    }

    /// The stream's answer arrived with `status`; `is_event_stream` is
    /// whether it is `text/event-stream`. `None`: read its events.
    pub fn opened(&mut self, status: u16, is_event_stream: bool) -> Option<LiveStep> {
        if !matches!(self.phase, Phase::Listening { .. }) {
            return None;
        }
        match status {
            200..=299 if is_event_stream => None,
            // The sync says why, in the relay's words.
            401 | 403 => Some(self.sync_then(AfterSync::Backoff)),
            // Too many requests: wait, then ask again.
            429 => Some(self.backoff()),
            // Anything else (a proxy's 502, a page that is not a stream):
            // the stream does not get through here.
            _ => {
                self.mode = Mode::Poll;
                Some(self.sync_then(AfterSync::Poll))
            }
        }
    }

    /// An event arrived on the stream. `Some(Sync)`: sync (the stream stays
    /// open; reporting the sync's result is needed only for a refusal).
    pub fn event(&mut self, name: &str) -> Option<LiveStep> {
        let listening = matches!(self.phase, Phase::Listening { .. });
        (listening && matches!(name, "ready" | "changed" | "removed")).then_some(LiveStep::Sync)
    }

    /// The stream ended at `now`.
    pub fn stream_ended(&mut self, now: u64, end: StreamEnd) -> LiveStep {
        let Phase::Listening { since } = self.phase else {
            return self.begin(now);
        };
        match end {
            StreamEnd::Silent { heard: false } => {
                self.mode = Mode::Poll;
                self.sync_then(AfterSync::Poll)
            }
            StreamEnd::Broken => self.backoff(),
            StreamEnd::Closed | StreamEnd::Silent { heard: true } => {
                if now.saturating_sub(since) < SHORT_STREAM_MS {
                    return self.backoff();
                }
                self.retry_ms = FIRST_RETRY_MS;
                let ms = self.spread(RECONNECT_MS, 50);
                self.pause(ms)
            }
        }
    }

    /// A sync ended at `now` with `result`. `None`: carry on as before
    /// (a sync during a stream).
    pub fn synced(&mut self, now: u64, result: SyncResult) -> Option<LiveStep> {
        if result == SyncResult::Refused {
            self.phase = Phase::Idle;
            return Some(LiveStep::Stop);
        }
        let Phase::Syncing { then } = self.phase else {
            return None;
        };
        Some(match (then, result) {
            (AfterSync::Poll, SyncResult::Done) => {
                self.phase = Phase::Polling { since: now };
                LiveStep::Poll {
                    wait_secs: POLL_WAIT_SECS,
                    timeout_ms: POLL_TIMEOUT_MS,
                }
            }
            _ => self.backoff(),
        })
    }

    /// A long poll ended at `now`: `status` is the relay's answer, `None`
    /// when none came (offline, timed out).
    pub fn polled(&mut self, now: u64, status: Option<u16>) -> LiveStep {
        let Phase::Polling { since } = self.phase else {
            return self.begin(now);
        };
        match status {
            Some(200..=299) => {
                self.retry_ms = FIRST_RETRY_MS;
                let spent = now.saturating_sub(since);
                if spent < POLL_SPACING_MS {
                    self.pause(POLL_SPACING_MS - spent)
                } else {
                    self.sync_then(AfterSync::Poll)
                }
            }
            Some(401 | 403) => self.sync_then(AfterSync::Backoff),
            _ => self.backoff(),
        }
    }

    /// A pause is over.
    pub fn resume(&mut self, now: u64) -> LiveStep {
        self.begin(now)
    }

    /// Listens, or syncs before a long poll, as the mode says.
    fn begin(&mut self, now: u64) -> LiveStep {
        match self.mode {
            Mode::Stream => {
                self.phase = Phase::Listening { since: now };
                LiveStep::Listen {
                    silence_ms: SILENCE_MS,
                }
            }
            Mode::Poll => self.sync_then(AfterSync::Poll),
        }
    }

    fn sync_then(&mut self, then: AfterSync) -> LiveStep {
        self.phase = Phase::Syncing { then };
        LiveStep::Sync
    }

    /// A pause after an error, doubling each time up to a minute.
    fn backoff(&mut self) -> LiveStep {
        let ms = self.spread(self.retry_ms, 25);
        self.retry_ms = (self.retry_ms * 2).min(MAX_RETRY_MS);
        self.pause(ms)
    }

    fn pause(&mut self, ms: u64) -> LiveStep {
        self.phase = Phase::Pausing;
        LiveStep::Pause { ms }
    }

    /// `ms`, give or take up to `percent` of it.
    fn spread(&mut self, ms: u64, percent: u64) -> u64 {
        // xorshift64: jitter only needs to differ between devices.
        self.jitter ^= self.jitter << 13;
        self.jitter ^= self.jitter >> 7;
        self.jitter ^= self.jitter << 17;
        let width = ms * percent / 100;
        ms - width + self.jitter % (2 * width + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listen() -> LiveStep {
        LiveStep::Listen {
            silence_ms: SILENCE_MS,
        }
    }

    fn poll() -> LiveStep {
        LiveStep::Poll {
            wait_secs: POLL_WAIT_SECS,
            timeout_ms: POLL_TIMEOUT_MS,
        }
    }

    fn pause_ms(step: LiveStep) -> u64 {
        match step {
            LiveStep::Pause { ms } => ms,
            other => panic!("expected a pause, got {other:?}"),
        }
    }

    #[test]
    fn a_stream_syncs_at_each_change_and_reopens_after_a_long_life() {
        let mut live = Live::new(7, Mode::Stream);
        assert_eq!(live.start(0), listen());
        assert_eq!(live.opened(200, true), None);
        assert_eq!(live.event("ready"), Some(LiveStep::Sync));
        assert_eq!(
            live.synced(10, SyncResult::Done),
            None,
            "the stream goes on"
        );
        assert_eq!(live.event("changed"), Some(LiveStep::Sync));
        assert_eq!(live.event("ping"), None);
        let ms = pause_ms(live.stream_ended(600_000, StreamEnd::Closed));
        assert!((500..=1_500).contains(&ms), "about a second: {ms}");
        assert_eq!(live.resume(601_000), listen());
    }

    #[test]
    fn errors_back_off_doubling_up_to_a_minute() {
        let mut live = Live::new(3, Mode::Stream);
        live.start(0);
        let mut pauses = Vec::new();
        for _ in 0..8 {
            pauses.push(pause_ms(live.stream_ended(0, StreamEnd::Broken)));
            assert_eq!(live.resume(0), listen());
        }
        for (got, base) in pauses
            .iter()
            .zip([2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000])
        {
            assert!(
                base * 3 / 4 <= *got && *got <= base * 5 / 4,
                "{got} near {base}"
            );
        }
        // A stream that ends at once counts as an error too.
        let mut live = Live::new(3, Mode::Stream);
        live.start(0);
        live.opened(200, true);
        let ms = pause_ms(live.stream_ended(2_000, StreamEnd::Closed));
        assert!(ms >= 1_500, "{ms}");
    }

    #[test]
    fn a_stream_held_back_turns_to_long_polls_until_the_network_changes() {
        for held_back in [
            |live: &mut Live| live.opened(200, false).unwrap(),
            |live: &mut Live| live.opened(404, false).unwrap(),
            |live: &mut Live| live.stream_ended(45_000, StreamEnd::Silent { heard: false }),
        ] {
            let mut live = Live::new(1, Mode::Stream);
            live.start(0);
            assert_eq!(held_back(&mut live), LiveStep::Sync);
            assert_eq!(live.mode(), Mode::Poll);
            assert_eq!(live.synced(100, SyncResult::Done), Some(poll()));
            // An answer at once: polls stay a second apart.
            assert_eq!(pause_ms(live.polled(400, Some(200))), 700);
            assert_eq!(live.resume(1_100), LiveStep::Sync);
            assert_eq!(live.synced(1_200, SyncResult::Done), Some(poll()));
            assert_eq!(live.polled(26_200, Some(200)), LiveStep::Sync);
            live.network_changed();
            assert_eq!(live.start(30_000), listen());
        }
        // Silence after bytes is a dead connection, not a proxy: open another.
        let mut live = Live::new(1, Mode::Stream);
        live.start(0);
        live.opened(200, true);
        assert!(matches!(
            live.stream_ended(300_000, StreamEnd::Silent { heard: true }),
            LiveStep::Pause { .. }
        ));
        assert_eq!(live.mode(), Mode::Stream);
    }

    #[test]
    fn a_refusal_syncs_to_say_why_and_a_permanent_one_stops() {
        let mut live = Live::new(5, Mode::Stream);
        live.start(0);
        assert_eq!(live.opened(403, false), Some(LiveStep::Sync));
        assert!(matches!(
            live.synced(10, SyncResult::Failed),
            Some(LiveStep::Pause { .. })
        ));
        live.resume(3_000);
        assert_eq!(live.opened(401, false), Some(LiveStep::Sync));
        assert_eq!(
            live.synced(3_100, SyncResult::Refused),
            Some(LiveStep::Stop)
        );
        // A removal heard on the stream: the sync is refused, and it stops.
        let mut live = Live::new(5, Mode::Stream);
        live.start(0);
        live.opened(200, true);
        assert_eq!(live.event("removed"), Some(LiveStep::Sync));
        assert_eq!(live.synced(10, SyncResult::Refused), Some(LiveStep::Stop));
        assert_eq!(live.event("changed"), None, "stopped");
    }

    #[test]
    fn a_busy_relay_is_waited_for_and_a_proxy_error_turns_to_polls() {
        let mut live = Live::new(9, Mode::Stream);
        live.start(0);
        assert!(matches!(
            live.opened(429, false),
            Some(LiveStep::Pause { .. })
        ));
        assert_eq!(live.mode(), Mode::Stream);
        // A proxy that answers the stream with an error: long polls.
        let mut live = Live::new(9, Mode::Stream);
        live.start(0);
        assert_eq!(live.opened(502, false), Some(LiveStep::Sync));
        assert_eq!(live.mode(), Mode::Poll);
        // A failed poll backs off too.
        let mut live = Live::new(9, Mode::Stream);
        live.start(0);
        live.opened(200, false);
        live.synced(0, SyncResult::Done);
        assert!(matches!(live.polled(45_000, None), LiveStep::Pause { .. }));
        assert_eq!(live.resume(47_000), LiveStep::Sync);
    }
}
