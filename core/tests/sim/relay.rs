//! An in-memory relay with the same HTTP API and the same answers as
//! `server/src/routes.rs`: every decision (who may call a route, which
//! membership entries, invites, redeems, joins and appends to accept, and
//! the refusal each gets) is made by `kith_core::relay_rules`, the functions
//! the real relay calls too. What is here is storage (the log, invites and
//! blobs in memory, each blob kept with the device that sent it and its
//! batch number in the clear) and the faults. As `append_log` in the real
//! storage does in the same transaction as the append, a removal whose
//! cutoff for some (device, scope) is below the highest batch number the
//! relay holds from that device in that scope (visible to readers yet or
//! not) is refused, so no batch the relay acknowledged is refused by
//! readers later.
//!
//! Blobs carry their scope in the clear: a fetch may ask for some scopes
//! only, each after its own position, and `GET .../checkpoints` serves the
//! newest checkpoint of each scope asked for, as the SQLite storage does.
//! (No run writes a checkpoint: a scope needs `CHECKPOINT_EVERY` = 256
//! batches first; `tests/tests/checkpoints.rs` covers them.)
//!
//! On top of that it shows the faults an honest relay can show: duplicated
//! and reordered pages, pages shorter than asked (blobs and log entries),
//! and appended blobs that become visible to readers only later. A delayed
//! blob hides itself *and every blob after it* until it becomes visible: the
//! relay guarantees that the blobs a fetch returns, and its `next`, always
//! form a prefix of its final order (the visibility frontier), so a cursor
//! never passes a blob that is not yet visible. (A relay that withholds a
//! blob for good is dishonest; `tests/tests/tamper.rs` covers that.)
//!
//! Why simulated: the real relay is a separate process behind real sockets
//! and a real clock; it cannot be driven step by step, with faults injected
//! at exact points, thousands of times per test run, and replayed exactly
//! from a seed. The real relay is exercised by `tests/tests/*.rs`. This one
//! does not check request signatures or clocks (those tests do).

use std::collections::BTreeMap;

use kith_core::api::{
    self, AppendBlobs, AppendLog, Appended, BlobPage, CheckpointList, ErrorBody, HEADER_DEVICE,
    LogPage, PublishInvite, RedeemInvite, Redeemed, RegisterAlliance,
};
use kith_core::membership::Action;
use kith_core::relay_rules::{self as rules, Redemption};
use kith_core::{
    AllianceId, BlobId, BlobRecord, DeviceId, HttpRequest, HttpResponse, InviteId, Membership,
    ScopeId, SignedEntry, Timestamp,
};

use super::{Dice, Faults};

/// How often the relay misbehaves, per mille, and how.
#[derive(Clone, Debug)]
pub struct Knobs {
    /// A fetched page has some of its blobs twice.
    pub duplicate: u64,
    /// A fetched page is shuffled.
    pub shuffle: u64,
    /// A newly appended blob is delayed.
    pub delay: u64,
    /// The longest delay, in steps.
    pub max_delay: u64,
    /// The most blobs the relay puts in one page (a relay may serve fewer
    /// than asked; `more` tells the client to go on).
    pub page_size: usize,
    /// The most membership entries in one page of the log.
    pub log_page: usize,
}

struct Invite {
    alliance: AllianceId,
    held: rules::HeldInvite,
    package: Vec<u8>,
}

struct Stored {
    alliance: AllianceId,
    /// The device that sent it (the signer of the append request).
    device: DeviceId,
    record: BlobRecord,
    /// The step it was appended at.
    appended_at: u64,
    /// The step from which it is visible (it and everything after it are
    /// hidden before).
    visible_at: u64,
    /// The step it was hidden until, if it was delayed (kept after healing).
    hidden_until: Option<u64>,
}

/// What the relay knows of one alliance: its log, replayed.
struct Alliance {
    membership: Membership,
}

/// A removal the relay accepted.
#[derive(Clone, Debug)]
pub struct Removal {
    /// The devices removed.
    pub devices: Vec<DeviceId>,
    /// The step at which the relay appended it.
    pub step: u64,
}

/// The simulated relay.
pub struct SimRelay {
    knobs: Knobs,
    faulty: bool,
    alliances: BTreeMap<AllianceId, Alliance>,
    invites: BTreeMap<InviteId, Invite>,
    /// Append order: a blob's position is its index + 1.
    blobs: Vec<Stored>,
    positions: BTreeMap<(AllianceId, BlobId), usize>,
    /// Every removal appended, in order.
    removals: Vec<Removal>,
    /// How many `Rotate` entries were appended.
    rotations: usize,
    /// How many removals were refused for a cutoff behind a batch it held.
    cutoff_refusals: u64,
    /// What the relay did wrong since the last `take_log`, for the trace.
    log: Vec<String>,
}

type Refusal = (u16, &'static str, String);
type Answer = Result<(u16, Vec<u8>), Refusal>;

/// A decision of the relay's rules as an answer.
fn refused(refusal: rules::Refusal) -> Refusal {
    (refusal.status(), refusal.code(), refusal.to_string())
}

impl SimRelay {
    /// An empty relay that misbehaves as `knobs` say.
    pub fn new(knobs: Knobs) -> Self {
        Self {
            knobs,
            faulty: true,
            alliances: BTreeMap::new(),
            invites: BTreeMap::new(),
            blobs: Vec::new(),
            positions: BTreeMap::new(),
            removals: Vec::new(),
            rotations: 0,
            cutoff_refusals: 0,
            log: Vec::new(),
        }
    }

    /// No more faults: every delayed blob becomes visible, pages are served
    /// straight and whole.
    pub fn heal(&mut self) {
        self.faulty = false;
        for blob in &mut self.blobs {
            blob.visible_at = 0;
        }
    }

    /// The misdeeds since the last call, a line each.
    pub fn take_log(&mut self) -> Vec<String> {
        std::mem::take(&mut self.log)
    }

    /// Where a blob sits, when it was appended, and from when fetches
    /// could see it (the frontier hides it while any blob before it, or
    /// itself, is hidden), for failure messages.
    pub fn describe(&self, id: BlobId) -> String {
        let Some(at) = self.blobs.iter().position(|b| b.record.id == id) else {
            return "never reached the relay".into();
        };
        let blob = &self.blobs[at];
        let shown = self.blobs[..=at]
            .iter()
            .filter_map(|b| b.hidden_until)
            .max()
            .unwrap_or(0)
            .max(blob.appended_at);
        let why = match blob.hidden_until {
            Some(_) => "itself delayed",
            None if shown > blob.appended_at => "behind a delayed blob",
            None => "never hidden",
        };
        format!(
            "at position {}, appended at step {}, visible from step {shown} ({why})",
            at + 1,
            blob.appended_at
        )
    }

    /// Every blob the relay holds, in its order.
    pub fn all_blobs(&self) -> Vec<BlobRecord> {
        self.blobs.iter().map(|b| b.record.clone()).collect()
    }

    /// The removals the relay accepted, in order.
    pub fn removals(&self) -> &[Removal] {
        &self.removals
    }

    /// The step at which the relay accepted `device`'s removal, if it did.
    pub fn removed_at(&self, device: DeviceId) -> Option<u64> {
        self.removals
            .iter()
            .find(|r| r.devices.contains(&device))
            .map(|r| r.step)
    }

    /// How many removals were refused because a batch of the device being
    /// removed, past the removal's cutoff, was already stored.
    pub fn cutoff_refusals(&self) -> u64 {
        self.cutoff_refusals
    }

    /// How many key rotations the log holds.
    pub fn rotations(&self) -> usize {
        self.rotations
    }

    /// The membership log of `alliance` as the relay holds it.
    pub fn membership(&self, alliance: AllianceId) -> Option<&Membership> {
        self.alliances.get(&alliance).map(|a| &a.membership)
    }

    /// Handles one request at step `now`, as the real relay would.
    pub fn handle(
        &mut self,
        request: &HttpRequest,
        now: u64,
        dice: &mut Dice,
        faults: &mut Faults,
    ) -> HttpResponse {
        let answer = self.route(request, now, dice, faults);
        match answer {
            Ok((status, body)) => HttpResponse { status, body },
            Err((status, code, message)) => HttpResponse {
                status,
                body: serde_json::to_vec(&ErrorBody {
                    error: code.into(),
                    message,
                })
                .unwrap(),
            },
        }
    }

    fn route(
        &mut self,
        req: &HttpRequest,
        now: u64,
        dice: &mut Dice,
        faults: &mut Faults,
    ) -> Answer {
        let device = req
            .headers
            .iter()
            .find(|(name, _)| *name == HEADER_DEVICE)
            .and_then(|(_, value)| value.parse::<DeviceId>().ok())
            .ok_or((401, "unauthenticated", "no device header".to_owned()))?;
        let (path, query) = req.path.split_once('?').unwrap_or((&req.path, ""));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (req.method, parts.as_slice()) {
            ("POST", ["v1", "alliances"]) => self.register(device, json(&req.body)?, now),
            ("POST", ["v1", "alliances", a, "invites"]) => {
                let a = alliance_id(a)?;
                self.require_member(a, device, faults)?;
                self.publish(device, a, json(&req.body)?, now)
            }
            ("POST", ["v1", "invites", i, "redeem"]) => {
                self.redeem(device, i, json(&req.body)?, now)
            }
            ("POST", ["v1", "alliances", a, "log"]) => {
                self.append_log(device, alliance_id(a)?, json(&req.body)?, now, faults)
            }
            ("GET", ["v1", "alliances", a, "log"]) => {
                let a = alliance_id(a)?;
                if let Err(refusal) = self.require_member(a, device, faults) {
                    // As the real relay: a removed device sees the log up
                    // to its removal.
                    let membership = &self.alliances[&a].membership;
                    let Some(at) = rules::removal_entry(membership, device) else {
                        return Err(refusal);
                    };
                    let entries = membership.entries()[..=at as usize].to_vec();
                    let page = LogPage {
                        entries,
                        more: false,
                    };
                    return Ok((200, serde_json::to_vec(&page).unwrap()));
                }
                // As the real relay: a device syncing as a member has kept
                // the keys of the invite it joined with.
                for id in rules::invites_used_by(&self.alliances[&a].membership, device) {
                    if let Some(invite) = self.invites.get_mut(&id) {
                        invite.package.clear();
                        invite.held.package_gone = true;
                    }
                }
                self.fetch_log(a, query, faults)
            }
            ("POST", ["v1", "alliances", a, "blobs"]) => {
                let a = alliance_id(a)?;
                self.require_member(a, device, faults)?;
                self.append(a, device, json(&req.body)?, now, dice, faults)
            }
            ("GET", ["v1", "alliances", a, "blobs"]) => {
                let a = alliance_id(a)?;
                self.require_member(a, device, faults)?;
                self.fetch(a, device, query, now, dice, faults)
            }
            ("GET", ["v1", "alliances", a, "checkpoints"]) => {
                let a = alliance_id(a)?;
                self.require_member(a, device, faults)?;
                self.checkpoints(a, device, query, now)
            }
            _ => Err((404, "not_found", format!("no route {} {path}", req.method))),
        }
    }

    /// As the real relay: an active device of the alliance, or 403 (and a
    /// removed device is told so).
    fn require_member(
        &self,
        alliance: AllianceId,
        device: DeviceId,
        faults: &mut Faults,
    ) -> Result<(), Refusal> {
        let active = self.active(alliance, device);
        if active == Some(false) {
            faults.removed_refused += 1;
        }
        rules::member_access(active).map_err(refused)
    }

    /// Whether the relay knows `device` in `alliance`, and if so whether it
    /// is active.
    fn active(&self, alliance: AllianceId, device: DeviceId) -> Option<bool> {
        self.alliances
            .get(&alliance)
            .and_then(|a| a.membership.device(&device))
            .map(|d| d.active)
    }

    fn register(&mut self, device: DeviceId, body: RegisterAlliance, now: u64) -> Answer {
        let membership = rules::new_alliance(device, &body).map_err(refused)?;
        match self.alliances.get(&body.alliance_id) {
            None => {
                self.alliances
                    .insert(body.alliance_id, Alliance { membership });
                self.note_entries(&body.log, now);
                Ok((201, Vec::new()))
            }
            Some(a) => {
                rules::registered_again(a.membership.entries() == body.log.as_slice())
                    .map_err(refused)?;
                Ok((200, Vec::new()))
            }
        }
    }

    fn publish(
        &mut self,
        device: DeviceId,
        alliance: AllianceId,
        body: PublishInvite,
        now: u64,
    ) -> Answer {
        let checked = rules::invite_to_publish(&body, Timestamp(now)).map_err(refused)?;
        if self.invites.contains_key(&body.invite_id) {
            return Err(refused(rules::INVITE_ID_TAKEN));
        }
        self.append_entries(alliance, device, &[body.entry], now)?;
        self.invites.insert(
            body.invite_id,
            Invite {
                alliance,
                held: rules::HeldInvite {
                    token_sha256: checked.token_sha256,
                    expires_at: body.expires_at,
                    used_by: None,
                    cancelled: false,
                    package_gone: false,
                },
                package: body.package,
            },
        );
        Ok((201, Vec::new()))
    }

    fn redeem(&mut self, device: DeviceId, invite: &str, body: RedeemInvite, now: u64) -> Answer {
        let id = rules::invite_id(invite).map_err(refused)?;
        let alliance = self
            .invites
            .get(&id)
            .ok_or(refused(rules::UNKNOWN_INVITE))?
            .alliance;
        let active = self.active(alliance, device);
        let cancelled = self.alliances[&alliance]
            .membership
            .invite(&id)
            .is_some_and(|i| i.cancelled);
        let stored = self.invites.get_mut(&id).expect("looked up above");
        stored.held.cancelled = cancelled;
        let decided = rules::redeem(&stored.held, &body.token, device, active, Timestamp(now));
        if decided.map_err(refused)? == Redemption::Consume {
            stored.held.used_by = Some(device);
        }
        let log = self.alliances[&stored.alliance]
            .membership
            .entries()
            .to_vec();
        let answer = Redeemed {
            alliance_id: stored.alliance,
            package: stored.package.clone(),
            log,
        };
        Ok((200, serde_json::to_vec(&answer).unwrap()))
    }

    /// `POST .../log`: from an active device; or, for its own join, from the
    /// device that redeemed the invite the join names.
    fn append_log(
        &mut self,
        device: DeviceId,
        alliance: AllianceId,
        body: AppendLog,
        now: u64,
        faults: &mut Faults,
    ) -> Answer {
        if let Err(refusal) = self.require_member(alliance, device, faults) {
            let Some(invite) = rules::joining_with(&body.entries) else {
                return Err(refusal);
            };
            let redeemed = self
                .invites
                .get(&invite)
                .map(|i| (i.alliance, i.held.used_by));
            rules::join_allowed(alliance, device, redeemed).map_err(refused)?;
        }
        self.append_entries(alliance, device, &body.entries, now)?;
        Ok((201, Vec::new()))
    }

    /// Checks entries from `signer` against the log and appends them, all
    /// or none: refused as the log's rules say (409 on a stale index), and
    /// with 409 when a removal's cutoff is behind a batch the relay holds.
    fn append_entries(
        &mut self,
        alliance: AllianceId,
        signer: DeviceId,
        entries: &[SignedEntry],
        now: u64,
    ) -> Result<(), Refusal> {
        let stored = self
            .alliances
            .get(&alliance)
            .ok_or(refused(rules::UNKNOWN_ALLIANCE))?;
        let checked = rules::entries_to_append(stored.membership.clone(), signer, entries)
            .map_err(refused)?;
        for cutoff in &checked.cutoffs {
            let held = self
                .blobs
                .iter()
                .filter(|b| {
                    b.alliance == alliance
                        && b.device == cutoff.device
                        && b.record.scope == cutoff.scope
                })
                .filter_map(|b| b.record.seq)
                .max();
            if rules::cutoff_behind(cutoff, held) {
                self.cutoff_refusals += 1;
                self.log.push(format!(
                    "relay: removal refused, it holds batch {} past the cutoff {}",
                    held.unwrap_or_default(),
                    cutoff.seq
                ));
                return Err(refused(rules::CUTOFF_BEHIND));
            }
        }
        let stored = self.alliances.get_mut(&alliance).expect("checked above");
        // As the real relay: the packages of invites this append cancelled go.
        for id in rules::cancelled_invites(&stored.membership, &checked.membership) {
            if let Some(invite) = self.invites.get_mut(&id) {
                invite.package.clear();
                invite.held.package_gone = true;
            }
        }
        stored.membership = checked.membership;
        self.note_entries(entries, now);
        Ok(())
    }

    /// Records removals and rotations among newly appended entries.
    fn note_entries(&mut self, entries: &[SignedEntry], now: u64) {
        for entry in entries {
            match entry.open().expect("checked").action {
                Action::Remove { devices, .. } => {
                    self.log.push(format!(
                        "relay: removal of {} device(s) appended",
                        devices.len()
                    ));
                    self.removals.push(Removal { devices, step: now });
                }
                Action::Rotate { .. } => self.rotations += 1,
                _ => {}
            }
        }
    }

    fn fetch_log(&mut self, alliance: AllianceId, query: &str, faults: &mut Faults) -> Answer {
        let mut from = 0u64;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let bad = || (400, "bad_request", format!("bad query {query}"));
            match pair.split_once('=').ok_or_else(bad)? {
                ("from", v) => from = v.parse().map_err(|_| bad())?,
                _ => return Err(bad()),
            }
        }
        let all = self.alliances[&alliance].membership.entries();
        let start = usize::try_from(from).unwrap_or(usize::MAX).min(all.len());
        let limit = self.knobs.log_page.min(api::MAX_ENTRIES_PER_FETCH);
        let entries: Vec<SignedEntry> = all[start..].iter().take(limit).cloned().collect();
        let more = all.len() - start > entries.len();
        if more {
            faults.log_paged += 1;
        }
        Ok((200, serde_json::to_vec(&LogPage { entries, more }).unwrap()))
    }

    fn append(
        &mut self,
        alliance: AllianceId,
        device: DeviceId,
        body: AppendBlobs,
        now: u64,
        dice: &mut Dice,
        faults: &mut Faults,
    ) -> Answer {
        rules::blobs_to_append(&body).map_err(refused)?;
        if rules::has_checkpoints(&body.blobs) {
            let membership = &self.alliances[&alliance].membership;
            rules::checkpoint_writers(membership, device, &body.blobs).map_err(refused)?;
        }
        // As the SQLite storage: every new blob is kept (one transaction that
        // commits), and an id holding another blob makes the answer 409.
        let mut conflict = false;
        for blob in &body.blobs {
            match self.positions.get(&(alliance, blob.id)) {
                Some(&at) => {
                    let old = &self.blobs[at];
                    conflict |= !rules::is_same_blob((old.device, &old.record), (device, blob));
                }
                None => {
                    let visible_at = if self.faulty && dice.chance(self.knobs.delay) {
                        faults.delayed_blob += 1;
                        let until = now + dice.range(1, self.knobs.max_delay);
                        self.log.push(format!(
                            "relay: blob at position {} (and all after it) hidden until step {until}",
                            self.blobs.len() + 1
                        ));
                        until
                    } else {
                        now
                    };
                    self.positions.insert((alliance, blob.id), self.blobs.len());
                    self.blobs.push(Stored {
                        alliance,
                        device,
                        record: blob.clone(),
                        appended_at: now,
                        visible_at,
                        hidden_until: (visible_at > now).then_some(visible_at),
                    });
                }
            }
        }
        if conflict {
            return Err(refused(rules::BLOB_ID_TAKEN));
        }
        let stored = Appended {
            stored: body.blobs.iter().map(|b| b.id).collect(),
        };
        Ok((200, serde_json::to_vec(&stored).unwrap()))
    }

    fn fetch(
        &mut self,
        alliance: AllianceId,
        device: DeviceId,
        query: &str,
        now: u64,
        dice: &mut Dice,
        faults: &mut Faults,
    ) -> Answer {
        let mut after = 0u64;
        let mut limit = None;
        let mut scopes = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let bad = || (400, "bad_request", format!("bad query {query}"));
            match pair.split_once('=').ok_or_else(bad)? {
                ("after", v) => after = v.parse().map_err(|_| bad())?,
                ("limit", v) => limit = Some(v.parse().map_err(|_| bad())?),
                ("scopes", v) => scopes = Some(rules::scope_list(v).map_err(refused)?),
                _ => return Err(bad()),
            }
        }
        let membership = &self.alliances[&alliance].membership;
        let scopes = rules::scopes_to_serve(membership, device, scopes).map_err(refused)?;
        let limit = rules::page_limit(limit).min(self.knobs.page_size);
        // The visibility frontier: nothing at or after the first blob still
        // hidden is served, so what a page shows is a prefix of the final order.
        let frontier = self.frontier(now);
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(self.blobs.len());
        assert!(
            start <= frontier,
            "a cursor ({start}) passed the visibility frontier ({frontier})"
        );
        // As the SQLite storage: after the cursor, and, when scopes are
        // given, only theirs, each after its own position.
        let wanted = |position: usize, b: &Stored| {
            b.alliance == alliance
                && scopes.as_ref().is_none_or(|list: &Vec<(ScopeId, u64)>| {
                    list.iter()
                        .any(|(scope, from)| b.record.scope == *scope && position as u64 > *from)
                })
        };
        let mut visible = self.blobs[start..frontier]
            .iter()
            .enumerate()
            .map(|(i, b)| (start + i + 1, b))
            .filter(|(position, b)| wanted(*position, b));
        let mut blobs = Vec::new();
        let mut next = after;
        for (position, stored) in visible.by_ref().take(limit) {
            blobs.push(stored.record.clone());
            next = position as u64;
        }
        let more = visible.next().is_some();
        if more {
            faults.blob_paged += 1;
        } else {
            let held = self.blobs[frontier..]
                .iter()
                .enumerate()
                .filter(|(i, b)| wanted(frontier + i + 1, b) && b.visible_at <= now)
                .count();
            if held > 0 {
                faults.frontier_held += 1;
                self.log.push(format!(
                    "relay: page stops at hidden position {}, holding back {held} due blob(s)",
                    frontier + 1
                ));
            }
        }
        // Copies stay within the client's own bound on a page's size.
        if self.faulty && !blobs.is_empty() && dice.chance(self.knobs.duplicate) {
            faults.duplicated_page += 1;
            let copies = dice.range(1, blobs.len() as u64);
            self.log
                .push(format!("relay: page with up to {copies} duplicates"));
            for _ in 0..copies {
                if blobs.len() >= api::MAX_BLOBS_PER_FETCH {
                    break;
                }
                let copy = blobs[dice.index(blobs.len())].clone();
                let at = dice.index(blobs.len() + 1);
                blobs.insert(at, copy);
            }
        }
        if self.faulty && blobs.len() > 1 && dice.chance(self.knobs.shuffle) {
            faults.shuffled_page += 1;
            self.log.push("relay: page shuffled".into());
            dice.shuffle(&mut blobs);
        }
        let page = BlobPage { blobs, next, more };
        Ok((200, serde_json::to_vec(&page).unwrap()))
    }
}

impl SimRelay {
    /// The index of the first blob still hidden at step `now` (or the
    /// number of blobs): fetches serve nothing from there on.
    fn frontier(&self, now: u64) -> usize {
        self.blobs
            .iter()
            .position(|b| b.visible_at > now)
            .unwrap_or(self.blobs.len())
    }

    /// `GET .../checkpoints?scopes=S:P,...`: for each scope, its newest
    /// checkpoint covering more than the position given (only visible ones).
    fn checkpoints(&self, alliance: AllianceId, device: DeviceId, query: &str, now: u64) -> Answer {
        let mut scopes = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let bad = || (400, "bad_request", format!("bad query {query}"));
            match pair.split_once('=').ok_or_else(bad)? {
                ("scopes", v) => scopes = rules::scope_list(v).map_err(refused)?,
                _ => return Err(bad()),
            }
        }
        let membership = &self.alliances[&alliance].membership;
        let scopes = rules::scopes_to_serve(membership, device, Some(scopes))
            .map_err(refused)?
            .unwrap_or_default();
        let visible = &self.blobs[..self.frontier(now)];
        let checkpoints = scopes
            .iter()
            .filter_map(|(scope, past)| {
                visible
                    .iter()
                    .enumerate()
                    .filter(|(_, b)| {
                        b.alliance == alliance
                            && b.record.scope == *scope
                            && b.record.covers.is_some_and(|c| c > *past)
                    })
                    .max_by_key(|(position, b)| (b.record.covers, *position))
                    .map(|(_, b)| b.record.clone())
            })
            .collect();
        Ok((
            200,
            serde_json::to_vec(&CheckpointList { checkpoints }).unwrap(),
        ))
    }
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Refusal> {
    serde_json::from_slice(body).map_err(|e| (400, "bad_request", format!("bad body: {e}")))
}

fn alliance_id(raw: &str) -> Result<AllianceId, Refusal> {
    rules::alliance_id(raw).map_err(refused)
}
