//! The simulated world: devices, the network between them and the relay,
//! and the three phases of a run (storm, heal, check). Membership events
//! (invites, joins, removals) are in `members.rs`.

use std::collections::{BTreeMap, BTreeSet};

use kith_core::{
    AgeIdentity, BlobId, Client, HttpRequest, HttpResponse, NewAlliance, Rejection, Role, StoreOp,
    SyncReport, Timestamp, WriteScope,
};
use rand_chacha::ChaCha20Rng;

use super::device::{Device, Written};
use super::members::{PendingJoin, Plan};
use super::relay::SimRelay;
use super::{Dice, Faults};

/// Rounds of syncing everyone after healing before giving up on quiet.
const HEAL_ROUNDS: usize = 5;

/// How often the network and the devices misbehave, per mille per chance.
pub struct Weather {
    /// A request is lost before it reaches the relay.
    pub request_lost: u64,
    /// The relay answers 503 without acting.
    pub unavailable: u64,
    /// The relay acts, but its answer is lost.
    pub answer_lost: u64,
    /// A step takes its device offline for a while.
    pub offline: u64,
    /// A step restarts its device from its store.
    pub restart: u64,
    /// A step has its device write a contribution.
    pub contribute: u64,
    /// A contribution goes to the research-only scope.
    pub research_only: u64,
    /// A device crashes part way through persisting a step's writes.
    pub torn: u64,
}

/// Everything in one run.
pub struct World {
    pub(super) dice: Dice,
    /// The clients' random source (ids, nonces, keys).
    pub(super) rng: ChaCha20Rng,
    pub relay: SimRelay,
    pub(super) devices: Vec<Device>,
    weather: Weather,
    pub(super) faulty: bool,
    /// The faults injected so far.
    pub faults: Faults,
    pub step: u64,
    /// What happened, a line per event (no ciphertext in it).
    pub trace: Vec<String>,
    /// Membership events still to come.
    pub plan: Plan,
    /// A device on its way in.
    pub(super) joining: Option<PendingJoin>,
    /// The research team's identity, kept outside every device.
    pub(super) research_identity: Option<AgeIdentity>,
    /// Which device wrote each contribution's blob.
    pub(super) writer_of: BTreeMap<BlobId, usize>,
    /// What a member who joins the cohort later reads of it.
    pub(super) history: kith_core::History,
}

impl World {
    /// A world with no devices yet, deciding with `dice`.
    pub fn new(seed: u64, dice: Dice, relay: SimRelay, weather: Weather, plan: Plan) -> Self {
        Self {
            dice,
            rng: Dice::client_rng(seed),
            relay,
            devices: Vec::new(),
            weather,
            faulty: true,
            faults: Faults::default(),
            step: 0,
            trace: Vec::new(),
            plan,
            joining: None,
            research_identity: None,
            writer_of: BTreeMap::new(),
            // Odd seeds run a cohort read from join on.
            history: if seed % 2 == 1 {
                kith_core::History::FromJoin
            } else {
                kith_core::History::Whole
            },
        }
    }

    /// Adds a line to the trace.
    pub fn note(&mut self, line: String) {
        self.trace.push(format!("{:>4} {line}", self.step));
    }

    pub(super) fn now(&self) -> Timestamp {
        Timestamp(self.step)
    }

    /// The step at which the relay accepted device `d`'s removal, if it did.
    pub(super) fn removed_at(&self, d: usize) -> Option<u64> {
        self.relay.removed_at(self.devices[d].client.device_id())
    }

    /// The blobs of every contribution written by a device now removed.
    pub(super) fn by_removed(&self) -> BTreeSet<BlobId> {
        self.writer_of
            .iter()
            .filter(|(_, d)| self.removed_at(**d).is_some())
            .map(|(blob, _)| *blob)
            .collect()
    }

    /// Crash and restart device `d` from its store (see `Device::restart`);
    /// a failure names the blobs its store holds that it now refuses.
    pub(super) fn restart(&mut self, d: usize, clean: bool) -> Result<(), String> {
        let by_removed = self.by_removed();
        let outcome = self.devices[d].restart(&mut self.dice, clean, &by_removed);
        outcome.map_err(|e| {
            let refused: Vec<String> = self.devices[d]
                .store
                .refused()
                .into_iter()
                .map(|id| self.describe_blob(id))
                .collect();
            format!("{e}; refused: {refused:?}")
        })
    }

    /// A blob: who wrote it and where the relay keeps it.
    pub(super) fn describe_blob(&self, id: BlobId) -> String {
        let writer = match self.writer_of.get(&id) {
            Some(&w) => {
                let text = self.devices[w].written.iter().find(|t| t.blob == id);
                format!(
                    "{}'s {}",
                    self.devices[w].name,
                    text.map_or("?", |t| &t.text)
                )
            }
            None => "a grant".into(),
        };
        format!("{id} ({writer}, {})", self.relay.describe(id))
    }

    /// Sends a request over the simulated network. `None` is a network
    /// failure as the device sees it.
    pub(super) fn deliver(&mut self, request: &HttpRequest) -> Option<HttpResponse> {
        let what = format!("{} {}", request.method, request.path);
        if self.faulty && self.dice.chance(self.weather.request_lost) {
            self.faults.request_lost += 1;
            self.note(format!("  {what}: request lost"));
            return None;
        }
        if self.faulty && self.dice.chance(self.weather.unavailable) {
            self.faults.relay_unavailable += 1;
            self.note(format!("  {what}: 503"));
            let body = br#"{"error":"storage","message":"the relay could not save or read data; try again later"}"#;
            return Some(HttpResponse {
                status: 503,
                body: body.to_vec(),
            });
        }
        let response = self
            .relay
            .handle(request, self.step, &mut self.dice, &mut self.faults);
        for line in self.relay.take_log() {
            self.note(format!("  {line}"));
        }
        if self.faulty && self.dice.chance(self.weather.answer_lost) {
            self.faults.answer_lost += 1;
            self.note(format!("  {what}: {}, answer lost", response.status));
            return None;
        }
        self.note(format!("  {what}: {}", response.status));
        Some(response)
    }

    /// Sends requests made by `make` until one gets a 2xx answer; lost
    /// requests, lost answers and 503s are retried with a fresh request.
    fn until_accepted(
        &mut self,
        mut make: impl FnMut(&mut Self) -> Result<HttpRequest, String>,
    ) -> Result<HttpResponse, String> {
        for _ in 0..200 {
            self.step += 1;
            let request = make(self)?;
            match self.deliver(&request) {
                Some(r) if (200..300).contains(&r.status) => return Ok(r),
                Some(r) if r.status != 503 => {
                    return Err(format!(
                        "{} {} refused: {} {}",
                        request.method,
                        request.path,
                        r.status,
                        String::from_utf8_lossy(&r.body)
                    ));
                }
                _ => {}
            }
        }
        Err("200 tries without an answer".into())
    }

    /// The steward creates and registers the alliance, then invites the
    /// others one by one (the last as a researcher if `research_device`).
    pub fn setup(
        &mut self,
        devices: usize,
        research_team: bool,
        research_device: bool,
    ) -> Result<(), String> {
        self.research_identity = research_team.then(|| AgeIdentity::generate(&mut self.rng));
        let (steward, ops) = Client::create_alliance(
            NewAlliance {
                name: "Simulated alliance".into(),
                cohort: "Cohort".into(),
                relay: "http://relay.invalid".into(),
                pseudonym: "P0".into(),
                researchers: self
                    .research_identity
                    .iter()
                    .map(AgeIdentity::recipient)
                    .collect(),
                history: self.history,
            },
            self.now(),
            &mut self.rng,
        )
        .map_err(|e| e.to_string())?;
        self.devices.push(Device::new("P0".into(), steward, ops)?);
        self.note("P0 creates the alliance".into());
        self.until_accepted(|w| Ok(w.devices[0].client.register_request(w.now(), &mut w.rng)))?;
        for i in 1..devices {
            let role = if research_device && i == devices - 1 {
                Role::Researcher
            } else {
                Role::Member
            };
            self.invite_and_join(role)?;
        }
        Ok(())
    }

    /// Random steps: each picks a device and what happens to it, unless a
    /// membership event takes the step.
    pub fn storm(&mut self, steps: u64) -> Result<(), String> {
        let end = self.step + steps;
        while self.step < end {
            self.step += 1;
            if self.membership_event()? {
                continue;
            }
            let d = self.dice.index(self.devices.len());
            let roll = self.dice.below(1000);
            let w = &self.weather;
            let (restart, offline, contribute) = (
                w.restart,
                w.restart + w.offline,
                w.restart + w.offline + w.contribute,
            );
            let online = self.step >= self.devices[d].offline_until;
            if roll < restart {
                self.faults.restart += 1;
                self.note(format!("{} restarts", self.devices[d].name));
                self.restart(d, true)?;
            } else if roll < offline && online {
                let until = self.step + self.dice.range(5, 60);
                self.faults.offline_stretch += 1;
                self.note(format!("{} offline until {until}", self.devices[d].name));
                self.devices[d].offline_until = until;
            } else if roll < contribute && self.devices[d].writes() {
                self.contribute(d)?;
            } else {
                self.exchange(d)?;
            }
        }
        Ok(())
    }

    pub(super) fn contribute(&mut self, d: usize) -> Result<(), String> {
        if !self.devices[d].client.is_active() {
            // It read its own removal in the log: its driver deleted it.
            return Ok(());
        }
        let now = self.now();
        let research = self.dice.chance(self.weather.research_only);
        let device = &mut self.devices[d];
        let text = format!(
            "d{d}-n{}{}",
            device.attempts,
            if research { "-r" } else { "" }
        );
        device.attempts += 1;
        let scope = if research {
            WriteScope::Research
        } else {
            WriteScope::Cohort
        };
        let knew_removed = device
            .client
            .membership()
            .devices()
            .filter(|(_, info)| !info.active)
            .map(|(id, _)| *id)
            .collect();
        if matches!(
            device.client.write_scope(scope),
            Err(kith_core::Error::SyncFirst(_))
        ) {
            // A newcomer whose group key has not reached it yet.
            let line = format!(
                "{} cannot write to its group before its key comes",
                device.name
            );
            self.faults.waiting_for_group_key += 1;
            self.note(line);
            return Ok(());
        }
        let stale = device.client.write_scope(scope).is_ok_and(|id| {
            let membership = device.client.membership();
            membership.scope(&id).is_some_and(|s| s.stale)
        });
        let (_, ops) = device
            .client
            .contribute(&text, scope, now, &mut self.rng)
            .map_err(|e| format!("{} could not contribute: {e}", device.name))?;
        let blob = ops
            .iter()
            .find_map(|op| match op {
                StoreOp::PutBlob(b) => Some(b.id),
                _ => None,
            })
            .ok_or("a contribution stored no blob")?;
        let line = format!("{} writes {text}", self.devices[d].name);
        self.note(line);
        let (stored, _) = self.persist(d, ops)?;
        // Once its blob is stored it must reach everyone, even if the
        // state record written after it was lost.
        if stored.contains(&blob) {
            self.writer_of.insert(blob, d);
            self.devices[d].written.push(Written {
                text,
                blob,
                research,
                step: now.millis(),
                knew_removed,
                stale,
            });
        }
        Ok(())
    }

    /// Writes a step's ops to device `d`'s store, or, by chance, crashes it
    /// part way and restarts it from what got written. Returns the ids of
    /// the blobs that reached the store, and whether it crashed.
    pub(super) fn persist(
        &mut self,
        d: usize,
        mut ops: Vec<StoreOp>,
    ) -> Result<(Vec<BlobId>, bool), String> {
        let total = ops.len();
        let torn = self.faulty && total > 1 && self.dice.chance(self.weather.torn);
        if torn {
            let kept = self.dice.index(total);
            ops.truncate(kept);
        }
        let kept = ops.len();
        self.faults.blob_dropped += ops
            .iter()
            .filter(|op| matches!(op, StoreOp::DeleteBlob(_)))
            .count() as u64;
        let stored = ops
            .iter()
            .filter_map(|op| match op {
                StoreOp::PutBlob(b) => Some(b.id),
                _ => None,
            })
            .collect();
        self.devices[d].store.apply(ops)?;
        if torn {
            self.faults.torn_write += 1;
            let name = self.devices[d].name.clone();
            self.note(format!("{name} crashes after {kept} of {total} writes"));
            self.restart(d, false)?;
        }
        Ok((stored, torn))
    }

    /// One request and its answer for device `d`, starting a sync run first
    /// if none is under way. Returns the report when the run finishes.
    pub(super) fn exchange(&mut self, d: usize) -> Result<Option<SyncReport>, String> {
        let now = self.now();
        let device = &mut self.devices[d];
        if !device.running {
            device.client.sync_start();
            device.running = true;
        }
        let request = device
            .client
            .sync_next(now, &mut self.rng)
            .ok_or_else(|| format!("{}'s running sync gave no request", device.name))?;
        let name = device.name.clone();
        if self.step < device.offline_until {
            device.running = false;
            self.faults.offline_request += 1;
            self.note(format!(
                "{name}: {} {}: offline",
                request.method, request.path
            ));
            return Ok(None);
        }
        self.note(format!("{name} syncs"));
        let Some(response) = self.deliver(&request) else {
            self.devices[d].running = false;
            return Ok(None);
        };
        let status = response.status;
        let device = &mut self.devices[d];
        match device.client.sync_receive(response, now, &mut self.rng) {
            Ok(step) => {
                let (_, crashed) = self.persist(d, step.ops)?;
                if crashed {
                    return Ok(None);
                }
                let Some(report) = step.finished else {
                    return Ok(None);
                };
                self.devices[d].running = false;
                self.note(format!(
                    "{name} finished: sent {}, received {}, rejected {}, missing {}",
                    report.sent,
                    report.received,
                    report.rejected.len(),
                    report.missing.len()
                ));
                self.judge_rejections(d, &report.rejected)?;
                self.devices[d].last_report = Some(report.clone());
                Ok(Some(report))
            }
            Err(_) if status == 503 => {
                self.devices[d].running = false;
                Ok(None)
            }
            Err(_) if status == 403 && self.removed_at(d).is_some() => {
                self.devices[d].running = false;
                Ok(None)
            }
            // The log it is served up to its removal shows it was removed.
            Err(kith_core::Error::Removed) if self.removed_at(d).is_some() => {
                self.devices[d].running = false;
                Ok(None)
            }
            Err(e) => Err(format!("{name}'s sync failed with no fault to blame: {e}")),
        }
    }

    /// An honest relay gives a device nothing to refuse except blobs that
    /// raced a membership change: one from a device its log does not know
    /// yet (it joined after this device fetched the log; the next sync
    /// looks again), or one a removed device wrote past its cutoff. Both
    /// are noted here; the final check wants the last sync clean.
    fn judge_rejections(&mut self, d: usize, rejected: &[Rejection]) -> Result<(), String> {
        let by_removed = self.by_removed();
        for rejection in rejected {
            let blob = rejection.blob();
            let explained = match rejection {
                Rejection::UnknownDevice(b) => self.writer_of.contains_key(b),
                Rejection::AfterRemoval(b) => {
                    self.faults.after_removal_refused += 1;
                    by_removed.contains(b)
                }
                _ => false,
            };
            let line = format!(
                "{} refused {}: {rejection}",
                self.devices[d].name,
                self.describe_blob(blob)
            );
            self.note(line.clone());
            if !explained {
                return Err(line);
            }
        }
        Ok(())
    }

    /// No more faults; membership events still due happen; then everyone
    /// still in the alliance syncs in rounds until a round is quiet, and
    /// each removed device is refused once more.
    pub fn heal(&mut self) -> Result<(), String> {
        self.faulty = false;
        self.relay.heal();
        for device in &mut self.devices {
            device.offline_until = 0;
            device.running = false;
        }
        self.note("healed".into());
        self.finish_events()?;
        for d in 0..self.devices.len() {
            if self.removed_at(d).is_some() && self.sync_once(d)?.is_some() {
                return Err(format!(
                    "{} was removed but still syncs",
                    self.devices[d].name
                ));
            }
        }
        for round in 1..=HEAL_ROUNDS {
            let mut quiet = true;
            for d in 0..self.devices.len() {
                if self.removed_at(d).is_some() {
                    continue;
                }
                let report = self.sync_once(d)?.ok_or_else(|| {
                    format!("{} stopped syncing after healing", self.devices[d].name)
                })?;
                quiet &= report.sent == 0 && report.received == 0;
            }
            if quiet {
                return Ok(());
            }
            if round == HEAL_ROUNDS {
                return Err(format!(
                    "still not quiet after {HEAL_ROUNDS} rounds of syncing"
                ));
            }
        }
        Ok(())
    }

    /// One whole sync run for device `d`, a step per request. `None` when
    /// it stopped (a lost request or answer, a 503, offline, a crash, or a
    /// removed device refused).
    pub(super) fn sync_once(&mut self, d: usize) -> Result<Option<SyncReport>, String> {
        self.devices[d].running = false;
        for _ in 0..10_000 {
            self.step += 1;
            if let Some(report) = self.exchange(d)? {
                return Ok(Some(report));
            }
            if !self.devices[d].running {
                return Ok(None);
            }
        }
        Err(format!("{}'s sync never finished", self.devices[d].name))
    }
}
