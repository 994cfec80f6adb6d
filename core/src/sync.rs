//! The sync state machine. One run: fetch the membership log and apply it;
//! send a pending membership change (a key rotation this device owes, say);
//! upload the outbox in pages (what may go now: see `outbox.rs`); then fetch every page of blobs after the
//! cursor. The driver loops `sync_next` -> send -> `sync_receive` until
//! `sync_next` returns `None`; it does the I/O, this does the rest.
//!
//! Uploads are idempotent (blob ids are chosen here), so a retry after a lost
//! answer never duplicates; the cursor moves only after a page is applied and
//! its blobs handed to the driver to store.
//!
//! When a device's chain has a gap (a later batch came, an earlier one did
//! not), or the last run refused blobs, the run fetches from the start
//! again (and a run that ends with a gap starts over once, from the newest
//! checkpoints): a blob the relay delayed may sit before the cursor, and a refused
//! one may since have been put right. Blobs already seen are skipped by id,
//! unopened.

use rand_core::CryptoRngCore;

use crate::api::{
    self, AppendBlobs, AppendLog, Appended, BlobPage, BlobRecord, CheckpointList, HttpRequest,
    HttpResponse, LogPage,
};
use crate::api::{json, relay_error};
use crate::client::Client;
use crate::error::Error;
use crate::sync_state::{Step, SyncReport, SyncRun, SyncStep, Waiting};

use crate::reader::{Ingested, Rejection};
use crate::state::StoreOp;
use crate::time::Timestamp;

impl Client {
    /// Starts a sync run (restarting one that was interrupted).
    pub fn sync_start(&mut self) {
        let looking_again = self.recheck || !self.reader.gaps().is_empty();
        let fetch_after = if looking_again { 0 } else { self.cursor };
        self.sync = Some(SyncRun {
            next: Step::Log,
            waiting: None,
            fetch_after,
            want_checkpoints: looking_again || self.cursor == 0,
            scopes: None,
            checkpointed: false,
            looked_again: false,
            report: SyncReport::default(),
        });
    }

    /// The next request to send, or `None` when the run is over (or not started).
    pub fn sync_next(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Option<HttpRequest> {
        let mut run = self.sync.take()?;
        if run.waiting.is_some() {
            self.sync = Some(run);
            return None;
        }
        // Steps with nothing to do are passed over.
        if matches!(run.next, Step::Checkpoints) && !(run.want_checkpoints && run.scopes.is_some())
        {
            run.next = Step::Upload;
        }
        if matches!(run.next, Step::Upload) && !self.outbox.iter().any(|b| self.may_send(b)) {
            run.next = Step::Fetch;
        }
        let alliance = self.profile.alliance;
        // The answer decides the step after; until then the run waits.
        let (request, waiting) = match std::mem::replace(&mut run.next, Step::Fetch) {
            Step::Log => {
                let path = api::paths::log_from(alliance, self.membership.len());
                (
                    self.sign_request("GET", path, Vec::new(), now, rng),
                    Waiting::Log,
                )
            }
            Step::Change(request) => (request, Waiting::Change),
            Step::Checkpoints => {
                let scopes = run.scopes.as_deref().unwrap_or_default();
                let path = api::paths::checkpoints(alliance, scopes);
                (
                    self.sign_request("GET", path, Vec::new(), now, rng),
                    Waiting::Checkpoints,
                )
            }
            Step::Upload => {
                // As many as fit in one request (base64 adds a third), at least one.
                let budget = api::MAX_REQUEST_BYTES / 2;
                let mut used = 0;
                let blobs: Vec<_> = self
                    .outbox
                    .iter()
                    .filter(|b| self.may_send(b))
                    .take(api::MAX_BLOBS_PER_APPEND)
                    .take_while(|b| {
                        used += b.data.len();
                        used <= budget || used == b.data.len()
                    })
                    .cloned()
                    .collect();
                let sending = blobs.iter().map(|b| b.id).collect();
                let body = json(&AppendBlobs { blobs });
                (
                    self.sign_request("POST", api::paths::blobs(alliance), body, now, rng),
                    Waiting::Upload(sending),
                )
            }
            Step::Fetch => {
                let path = api::paths::blobs_after(
                    alliance,
                    run.fetch_after,
                    api::MAX_BLOBS_PER_FETCH,
                    run.scopes.as_deref(),
                );
                (
                    self.sign_request("GET", path, Vec::new(), now, rng),
                    Waiting::Fetch,
                )
            }
        };
        run.waiting = Some(waiting);
        self.sync = Some(run);
        Some(request)
    }

    /// Feeds the relay's answer to the request from `sync_next`. An error
    /// ends the run; everything already persisted stays valid. (`now` and
    /// `rng` are for a key rotation this device may owe.)
    pub fn sync_receive(
        &mut self,
        response: HttpResponse,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<SyncStep, Error> {
        let mut run = self
            .sync
            .take()
            .ok_or(Error::OutOfOrder("no sync is running"))?;
        let waiting = run
            .waiting
            .take()
            .ok_or(Error::OutOfOrder("no request is waiting for an answer"))?;
        let mut ops = Vec::new();
        let ok = (200..300).contains(&response.status);
        let more = match waiting {
            Waiting::Change => {
                // Refused (the log moved on meanwhile): forget it; the next
                // run looks again at what is owed.
                if !ok && response.status != 409 {
                    return Err(relay_error(&response));
                }
                ops.extend(if ok {
                    self.change_accepted()?
                } else {
                    self.change_refused()
                });
                // A new key of its own may free writing kept for one.
                ops.extend(self.reseal_outbox()?);
                run.next = Step::Checkpoints;
                self.sync = Some(run);
                return Ok(SyncStep {
                    ops,
                    finished: None,
                });
            }
            _ if !ok => return Err(relay_error(&response)),
            Waiting::Log => {
                let page: LogPage = parse(&response)?;
                let reading = self.fetch_scopes();
                self.apply_log(&page.entries)?;
                if self.reads_a_new_scope(reading.as_deref()) {
                    // A scope this device now reads (a cohort's new
                    // chapter) may hold blobs from before the cursor,
                    // fetched while it was not asked for: read it all.
                    self.cursor = 0;
                    run.fetch_after = 0;
                    run.want_checkpoints = true;
                }
                // The signed log says this device was removed (the relay
                // serves a removed device the log up to its removal): the
                // driver deletes what it holds. A bare refusal does not.
                if !self.is_active() {
                    return Err(Error::Removed);
                }
                run.next = if page.more {
                    Step::Log
                } else {
                    ops.extend(self.settle_pending());
                    let owed = self.owed_change(now, rng, &mut ops)?;
                    // Writing sealed with a key someone who left holds
                    // goes out sealed to the new one (`outbox.rs`).
                    ops.extend(self.reseal_outbox()?);
                    run.scopes = self.fetch_scopes();
                    match owed {
                        Some(request) => Step::Change(request),
                        None => Step::Checkpoints,
                    }
                };
                true
            }
            Waiting::Checkpoints => {
                let list: CheckpointList = parse(&response)?;
                self.ingest_fetched(list.checkpoints, &mut run.report, &mut ops);
                // Fetch each scope from where its newest checkpoint ends.
                run.scopes = self.fetch_scopes();
                run.next = Step::Upload;
                true
            }
            Waiting::Upload(sending) => {
                let appended: Appended = parse(&response)?;
                if appended.stored.iter().any(|id| !sending.contains(id)) {
                    return Err(Error::BadResponse(
                        "the relay confirmed a blob that was not sent",
                    ));
                }
                self.outbox.retain(|b| !appended.stored.contains(&b.id));
                run.report.sent += appended.stored.len();
                if appended.stored.is_empty() {
                    return Err(Error::BadResponse("the relay stored nothing"));
                }
                run.next = Step::Upload;
                true
            }
            Waiting::Fetch => {
                let page: BlobPage = parse(&response)?;
                if page.next < run.fetch_after || page.blobs.len() > api::MAX_BLOBS_PER_FETCH {
                    return Err(Error::BadResponse("the page does not follow the last one"));
                }
                self.ingest_fetched(page.blobs, &mut run.report, &mut ops);
                run.fetch_after = page.next;
                self.cursor = self.cursor.max(page.next);
                run.next = Step::Fetch;
                if !page.more {
                    // A key that just arrived frees writing kept for it.
                    ops.extend(self.reseal_outbox()?);
                    if !run.checkpointed {
                        // Summaries this device owes go out in this run.
                        run.checkpointed = true;
                        ops.extend(self.due_checkpoints(rng)?);
                    }
                    if self.outbox.iter().any(|b| self.may_send(b)) {
                        run.next = Step::Upload;
                    }
                }
                page.more || matches!(run.next, Step::Upload)
            }
        };
        let missing = !more && !self.reader.gaps().is_empty();
        let finished = if more {
            self.recheck |= run.report.rejected.iter().any(Rejection::may_be_repaired);
            None
        } else if missing && !run.looked_again {
            // Batches are missing: look once more from the start, beginning
            // with the newest checkpoints, where batches the relay deleted
            // because a checkpoint superseded them (a device offline for a
            // long time) are found.
            run.looked_again = true;
            run.next = Step::Log;
            run.fetch_after = 0;
            run.want_checkpoints = true;
            run.scopes = None;
            run.checkpointed = false;
            None
        } else {
            run.report.rejected.dedup();
            run.report.missing = self.reader.gaps();
            run.report.kept = self.kept_for_new_key();
            run.report.refused_writers = run
                .report
                .rejected
                .iter()
                .filter_map(|r| Some((r.blob(), self.refused_writer(r)?)))
                .collect();
            self.recheck = run.report.rejected.iter().any(Rejection::may_be_repaired);
            Some(std::mem::take(&mut run.report))
        };
        // The state first, then the replica: a replica never holds more than
        // the state record beside it knows (its outbox, its own chains).
        ops.push(StoreOp::PutState(self.saved().encode()));
        match finished {
            Some(_) => ops.extend(self.save_replica()?),
            None => self.sync = Some(run),
        }
        Ok(SyncStep { ops, finished })
    }

    /// Opens, checks and applies fetched blobs; what to keep goes to `ops`.
    fn ingest_fetched(
        &mut self,
        blobs: Vec<BlobRecord>,
        report: &mut SyncReport,
        ops: &mut Vec<StoreOp>,
    ) {
        let ingestion = self.reader.ingest_all(&blobs, &self.membership);
        for (blob, outcome) in blobs.into_iter().zip(ingestion.outcomes) {
            match outcome {
                Ok(Ingested::AlreadyHad | Ingested::Covered) => {}
                Ok(Ingested::Applied | Ingested::Unreadable | Ingested::Held) => {
                    report.received += 1;
                    ops.push(StoreOp::PutBlob(blob));
                }
                Err(rejection) => report.rejected.push(rejection),
            }
        }
        report.rejected.extend(ingestion.late);
    }

    /// The membership change to send this run: a pending one the relay has
    /// not seen yet, or a key rotation this device owes.
    fn owed_change(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        ops: &mut Vec<StoreOp>,
    ) -> Result<Option<HttpRequest>, Error> {
        if let Some(pending) = &self.pending {
            let body = json(&AppendLog {
                entries: pending.entries.clone(),
            });
            let path = api::paths::log(self.profile.alliance);
            return Ok(Some(self.sign_request("POST", path, body, now, rng)));
        }
        Ok(self.rotation_duty(now, rng)?.map(|(request, staged)| {
            ops.extend(staged);
            request
        }))
    }
}

fn parse<T: serde::de::DeserializeOwned>(response: &HttpResponse) -> Result<T, Error> {
    serde_json::from_slice(&response.body).map_err(|_| Error::BadResponse("unexpected body"))
}
