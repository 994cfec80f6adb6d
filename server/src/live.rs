//! Live updates: a device keeps one request open and hears, within moments,
//! that its alliance changed; then it syncs as usual. Nothing but the word
//! "changed" travels on the stream: no ids, no content.
//!
//! Two ways, for two kinds of network:
//! - `GET /v1/alliances/{a}/events`: server-sent events (plain HTTP, no
//!   WebSocket upgrade for a proxy to block);
//! - `GET /v1/alliances/{a}/blobs?after=N&wait=S`: a long poll, for networks
//!   whose proxies hold streamed answers back; it answers as soon as there is
//!   something after N, or with an empty page after S seconds.
//!
//! Notices come from storage (`Storage::changes`): on PostgreSQL, from every
//! relay instance through LISTEN/NOTIFY.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use kith_core::{AllianceId, DeviceId};
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use crate::AppState;
use crate::auth::Signed;
use crate::error::AppError;
use crate::routes::{alliance_id, require_member};
use crate::storage::{Change, Storage};

/// How long one stream lasts; then the device connects again, signing anew,
/// so a removed device does not keep listening.
const STREAM_LIFETIME: Duration = Duration::from_secs(10 * 60);
/// A comment line this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// How often a stream checks that its device is still in the alliance.
const MEMBERSHIP_RECHECK: Duration = Duration::from_secs(30);
/// The longest long poll.
pub const MAX_WAIT_SECS: u64 = 30;
/// How many live-update connections (streams and long polls) one device may
/// hold open at once on one relay instance: each holds a connection for up
/// to ten minutes. An app holds one; a second tab, or `kith sync --watch`
/// beside it, still fits.
pub const MAX_OPEN_PER_DEVICE: usize = 4;

/// Open live-update connections, per device.
type OpenCount = Arc<Mutex<HashMap<DeviceId, usize>>>;

/// Shared by the live-update streams of one relay instance.
pub struct Live {
    closing: watch::Sender<bool>,
    open: OpenCount,
}

impl Default for Live {
    fn default() -> Self {
        Self {
            closing: watch::channel(false).0,
            open: OpenCount::default(),
        }
    }
}

/// One of a device's live-update connections; given back when dropped
/// (the stream ended, or the device went away).
pub struct Slot {
    open: OpenCount,
    device: DeviceId,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.device) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.device);
            }
        }
    }
}

impl Live {
    /// Ends every stream (the relay is shutting down; devices reconnect to
    /// another instance or when it is back).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// A slot for one more live-update connection of `device`, or a refusal
    /// (429) if it holds as many as it may.
    pub fn slot(&self, device: DeviceId) -> Result<Slot, AppError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(device).or_insert(0);
        if *count >= MAX_OPEN_PER_DEVICE {
            return Err(AppError::TooManyStreams(MAX_OPEN_PER_DEVICE));
        }
        *count += 1;
        Ok(Slot {
            open: Arc::clone(&self.open),
            device,
        })
    }
}

/// One open stream.
struct Listener<S> {
    /// `None` once the stream has said its last.
    changes: Option<broadcast::Receiver<Change>>,
    closing: watch::Receiver<bool>,
    state: AppState<S>,
    started: bool,
    /// Held for as long as the stream is open.
    _slot: Slot,
    /// When the device's membership was last checked.
    checked: Instant,
}

/// Waits until `alliance` changes, the relay closes, or `deadline`. True if
/// it changed (or notices were lost, which counts as a change).
async fn changed(
    changes: &mut broadcast::Receiver<Change>,
    closing: &mut watch::Receiver<bool>,
    alliance: AllianceId,
    deadline: Instant,
) -> bool {
    loop {
        if *closing.borrow() {
            return false;
        }
        tokio::select! {
            notice = changes.recv() => match notice {
                Ok(Change::Alliance(a)) if a != alliance => continue,
                // Ours, or everyone's, or some were missed while this
                // listener lagged behind: all mean "sync".
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => return true,
                Err(broadcast::error::RecvError::Closed) => return false,
            },
            _ = closing.changed() => return false,
            () = tokio::time::sleep_until(deadline) => return false,
        }
    }
}

/// `GET /v1/alliances/{alliance}/events`: server-sent events. First
/// `ready` (the device syncs then, so nothing between its last sync and the
/// stream is missed), then `changed` whenever the alliance changes.
pub async fn events<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    signed: Signed,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, AppError> {
    let alliance = alliance_id(&alliance)?;
    require_member(&state, alliance, signed.device).await?;
    let slot = state.live.slot(signed.device)?;
    // Listen before answering, so no change falls between `ready` and the first notice.
    let changes = state.storage.changes();
    let closing = state.live.closing();
    let deadline = Instant::now() + STREAM_LIFETIME;
    let device = signed.device;
    tracing::debug!(alliance = %alliance, "live updates stream opened");
    let listener = Listener {
        changes: Some(changes),
        closing,
        state,
        started: false,
        checked: Instant::now(),
        _slot: slot,
    };
    let stream = futures_util::stream::unfold(listener, move |mut l| async move {
        if !l.started {
            l.started = true;
            return Some((Ok(Event::default().event("ready").data("{}")), l));
        }
        let mut changes = l.changes.take()?;
        if !changed(&mut changes, &mut l.closing, alliance, deadline).await {
            return None;
        }
        // A device removed meanwhile hears no more. Checked now and then,
        // not at every notice: a removed device's next sync is refused anyway.
        if l.checked.elapsed() > MEMBERSHIP_RECHECK {
            l.checked = Instant::now();
            if require_member(&l.state, alliance, device).await.is_err() {
                return Some((Ok(Event::default().event("removed").data("{}")), l));
            }
        }
        // Coalesce a burst of notices into one.
        while changes.try_recv().is_ok() {}
        l.changes = Some(changes);
        Some((Ok(Event::default().event("changed").data("{}")), l))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// For a long poll: waits up to `wait_secs` for `alliance` to change. The
/// caller subscribed (`changes`) before it looked, so nothing is missed.
pub async fn wait_for_change<S: Storage>(
    state: &AppState<S>,
    mut changes: broadcast::Receiver<Change>,
    alliance: AllianceId,
    wait_secs: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(wait_secs.min(MAX_WAIT_SECS));
    let mut closing = state.live.closing();
    changed(&mut changes, &mut closing, alliance, deadline).await;
}
