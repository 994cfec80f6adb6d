//! `kith sync --watch`: drives the core's live-update machine
//! (`kith_core::live`, which the app drives too): it decides when to listen
//! on the relay's event stream, when to long-poll instead, when to sync and
//! how long to pause; this module only does the I/O.

use std::io::{BufRead, BufReader};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use anyhow::Result;
use kith_core::live::{Live, LiveStep, StreamEnd, SyncResult};
use kith_core::{Client, Error as CoreError, SyncReport};
use rand_core::{OsRng, RngCore};

use crate::relay::{Relay, now, sync};
use crate::store::DataDir;

pub use kith_core::live::Mode;

/// The relay ends each stream after 10 minutes; a little more than that.
const STREAM_LIMIT: Duration = Duration::from_secs(11 * 60);

/// Watches until the relay refuses the device for good; calls `report`
/// after every sync that went through.
pub fn watch(
    client: &mut Client,
    dir: &DataDir,
    mode: Mode,
    report: &mut dyn FnMut(&SyncReport),
) -> Result<()> {
    let mut watcher = Watcher {
        relay: Relay::new(&client.profile().relay),
        live: Live::new(OsRng.next_u64(), mode),
        client,
        dir,
        report,
        last_error: None,
    };
    // Other commands may use the folder between syncs.
    dir.unlock();
    let mut step = watcher.live.start(clock());
    loop {
        step = match step {
            LiveStep::Listen { silence_ms } => watcher.listen(silence_ms),
            LiveStep::Sync => {
                let result = watcher.sync();
                watcher
                    .live
                    .synced(clock(), result)
                    .unwrap_or_else(|| watcher.live.resume(clock()))
            }
            LiveStep::Poll {
                wait_secs,
                timeout_ms,
            } => watcher.poll(wait_secs, timeout_ms),
            LiveStep::Pause { ms } => {
                if let Some(e) = &watcher.last_error {
                    eprintln!("kith: {e:#}; trying again in {} s", ms.div_ceil(1_000));
                }
                std::thread::sleep(Duration::from_millis(ms));
                watcher.live.resume(clock())
            }
            LiveStep::Stop => {
                return Err(watcher
                    .last_error
                    .take()
                    .unwrap_or_else(|| anyhow::anyhow!("the relay refused this device")));
            }
        };
    }
}

/// The time in milliseconds, as the machine counts it.
fn clock() -> u64 {
    now().millis()
}

struct Watcher<'a> {
    relay: Relay,
    live: Live,
    client: &'a mut Client,
    dir: &'a DataDir,
    report: &'a mut dyn FnMut(&SyncReport),
    /// What went wrong last, said at the next pause (or at the stop).
    last_error: Option<anyhow::Error>,
}

impl Watcher<'_> {
    /// Syncs, tells the caller, and classifies the outcome for the machine.
    /// The device is loaded again first, under the folder's lock: another
    /// command may have changed it since (written something, say).
    fn sync(&mut self) -> SyncResult {
        let outcome = self.dir.load().and_then(|fresh| {
            *self.client = fresh;
            sync(self.client, self.dir)
        });
        self.dir.unlock();
        match outcome {
            Ok(done) => {
                (self.report)(&done);
                self.last_error = None;
                SyncResult::Done
            }
            Err(e) => {
                // Refused for good, or removed (the folder was wiped).
                let for_good = e
                    .downcast_ref::<CoreError>()
                    .is_some_and(CoreError::is_refused_for_good)
                    || self.dir.removal_notice().is_some();
                self.last_error = Some(e);
                if for_good {
                    SyncResult::Refused
                } else {
                    SyncResult::Failed
                }
            }
        }
    }

    /// Opens the event stream and follows it until it ends, or until the
    /// machine says otherwise.
    fn listen(&mut self, silence_ms: u64) -> LiveStep {
        let request = self.client.events_request(now(), &mut OsRng);
        let response = match self.relay.open_stream(&request, STREAM_LIMIT) {
            Ok(response) => response,
            Err(e) => {
                self.last_error = Some(e);
                return self.live.stream_ended(clock(), StreamEnd::Broken);
            }
        };
        let status = response.status().as_u16();
        let is_stream = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("text/event-stream"));
        let was = self.live.mode();
        if let Some(next) = self.live.opened(status, is_stream) {
            if self.live.mode() != was {
                eprintln!(
                    "kith: the relay sends no live updates here; asking it every few seconds instead"
                );
            } else {
                self.last_error = Some(anyhow::anyhow!(
                    "the relay could not open live updates just now ({status})"
                ));
            }
            return next;
        }
        // Lines arrive on a thread, so silence can be timed here.
        let (lines, heard_lines) = mpsc::channel();
        let reader = BufReader::new(response.into_body().into_reader());
        std::thread::spawn(move || {
            for line in reader.lines() {
                if lines.send(line).is_err() {
                    return;
                }
            }
        });
        let silence = Duration::from_millis(silence_ms);
        let mut heard = false;
        loop {
            let line = match heard_lines.recv_timeout(silence) {
                Ok(Ok(line)) => line,
                Ok(Err(e)) => {
                    self.last_error =
                        Some(anyhow::Error::new(e).context("the live updates stream broke"));
                    return self.live.stream_ended(clock(), StreamEnd::Broken);
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return self.live.stream_ended(clock(), StreamEnd::Closed);
                }
                Err(RecvTimeoutError::Timeout) => {
                    return self.live.stream_ended(clock(), StreamEnd::Silent { heard });
                }
            };
            heard = true;
            let Some(event) = line.strip_prefix("event:").map(str::trim) else {
                continue;
            };
            if self.live.event(event) == Some(LiveStep::Sync) {
                let result = self.sync();
                if let Some(next) = self.live.synced(clock(), result) {
                    return next;
                }
                // The stream stays open, so no pause will say it: say it now.
                if let (SyncResult::Failed, Some(e)) = (result, &self.last_error) {
                    eprintln!("kith: {e:#}; trying again at the next change");
                }
            }
        }
    }

    /// Sends one long poll and tells the machine how it went.
    fn poll(&mut self, wait_secs: u64, timeout_ms: u64) -> LiveStep {
        let request = self.client.wait_request(wait_secs, now(), &mut OsRng);
        let status = match self
            .relay
            .send_within(&request, Duration::from_millis(timeout_ms))
        {
            Ok(response) => {
                if !(200..300).contains(&response.status) {
                    self.last_error = Some(anyhow::anyhow!(
                        "the relay did not answer the poll ({})",
                        response.status
                    ));
                }
                Some(response.status)
            }
            Err(e) => {
                self.last_error = Some(e);
                None
            }
        };
        self.live.polled(clock(), status)
    }
}
