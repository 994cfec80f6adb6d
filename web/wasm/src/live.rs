//! The core's live-update machine for the app (web/app/src/live.ts drives it).

use kith_core::live::{Live, LiveStep, StreamEnd, SyncResult};
use rand_core::{OsRng, RngCore};
use serde::Serialize;
use tsify::{Ts, Tsify};
use wasm_bindgen::prelude::*;

use crate::convert::ts;

/// What the app does next: the core's [`LiveStep`].
#[derive(Serialize, Tsify)]
#[serde(
    tag = "step",
    rename_all = "lowercase",
    rename_all_fields = "camelCase"
)]
pub enum LiveNext {
    /// Open the event stream; count `silenceMs` without a byte as silence.
    Listen { silence_ms: u32 },
    /// Sync now.
    Sync,
    /// Send a long poll that waits `waitSecs`; give up after `timeoutMs`.
    Poll { wait_secs: u32, timeout_ms: u32 },
    /// Wait `ms`, then resume.
    Pause { ms: u32 },
    /// Stop: the relay refused this device for good.
    Stop,
}

fn millis(ms: u64) -> u32 {
    u32::try_from(ms).unwrap_or(u32::MAX)
}

impl From<LiveStep> for LiveNext {
    fn from(step: LiveStep) -> Self {
        match step {
            LiveStep::Listen { silence_ms } => LiveNext::Listen {
                silence_ms: millis(silence_ms),
            },
            LiveStep::Sync => LiveNext::Sync,
            LiveStep::Poll {
                wait_secs,
                timeout_ms,
            } => LiveNext::Poll {
                wait_secs: millis(wait_secs),
                timeout_ms: millis(timeout_ms),
            },
            LiveStep::Pause { ms } => LiveNext::Pause { ms: millis(ms) },
            LiveStep::Stop => LiveNext::Stop,
        }
    }
}

/// How an event stream ended.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub enum StreamEnded {
    /// The relay closed it.
    Closed = "closed",
    /// Not a byte for the silence limit, and none before.
    SilentFromStart = "silent-from-start",
    /// Not a byte for the silence limit, after some.
    SilentAfterBytes = "silent-after-bytes",
    /// The connection broke.
    Broken = "broken",
}

/// How a sync went.
#[wasm_bindgen]
#[derive(Clone, Copy)]
pub enum SyncOutcome {
    /// It went through.
    Done = "done",
    /// It failed for now.
    Failed = "failed",
    /// The relay refused the device for good.
    Refused = "refused",
}

fn now() -> u64 {
    js_sys::Date::now() as u64
}

fn next(step: LiveStep) -> Result<Ts<LiveNext>, JsValue> {
    ts(&LiveNext::from(step))
}

/// Live updates' decisions; the app does the I/O.
#[wasm_bindgen]
pub struct LiveUpdates {
    inner: Live,
}

#[wasm_bindgen]
impl LiveUpdates {
    /// A machine that listens on the stream first.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        Self {
            inner: Live::new(OsRng.next_u64(), kith_core::live::Mode::Stream),
        }
    }

    /// Starts, or starts again after a stop.
    pub fn start(&mut self) -> Result<Ts<LiveNext>, JsValue> {
        next(self.inner.start(now()))
    }

    /// The phone came online (perhaps on another network): try the stream again.
    #[wasm_bindgen(js_name = networkChanged)]
    pub fn network_changed(&mut self) {
        self.inner.network_changed();
    }

    /// The stream answered; `undefined`: read its events.
    pub fn opened(
        &mut self,
        status: u16,
        is_event_stream: bool,
    ) -> Result<Option<Ts<LiveNext>>, JsValue> {
        self.inner
            .opened(status, is_event_stream)
            .map(next)
            .transpose()
    }

    /// An event arrived on the stream; true: sync now.
    pub fn event(&mut self, name: &str) -> bool {
        self.inner.event(name) == Some(LiveStep::Sync)
    }

    /// The stream ended.
    #[wasm_bindgen(js_name = streamEnded)]
    pub fn stream_ended(&mut self, end: StreamEnded) -> Result<Ts<LiveNext>, JsValue> {
        let end = match end {
            StreamEnded::Closed => StreamEnd::Closed,
            StreamEnded::SilentFromStart => StreamEnd::Silent { heard: false },
            StreamEnded::SilentAfterBytes => StreamEnd::Silent { heard: true },
            StreamEnded::Broken | StreamEnded::__Invalid => StreamEnd::Broken,
        };
        next(self.inner.stream_ended(now(), end))
    }

    /// A sync ended; `undefined`: carry on as before.
    pub fn synced(&mut self, outcome: SyncOutcome) -> Result<Option<Ts<LiveNext>>, JsValue> {
        let result = match outcome {
            SyncOutcome::Done => SyncResult::Done,
            SyncOutcome::Refused => SyncResult::Refused,
            SyncOutcome::Failed | SyncOutcome::__Invalid => SyncResult::Failed,
        };
        self.inner.synced(now(), result).map(next).transpose()
    }

    /// A long poll ended with the relay's `status`, or none (offline, timed out).
    pub fn polled(&mut self, status: Option<u16>) -> Result<Ts<LiveNext>, JsValue> {
        next(self.inner.polled(now(), status))
    }

    /// A pause is over.
    pub fn resume(&mut self) -> Result<Ts<LiveNext>, JsValue> {
        next(self.inner.resume(now()))
    }
}
