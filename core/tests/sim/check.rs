//! The end of a run: after healing, every device still in the alliance must
//! read exactly what the members who stayed wrote (in a cohort read from
//! join on, what was written in the chapters their member reads), agree on
//! everything else,
//! and hold the same membership log; a removal must have rotated the keys of
//! what the removed member read. A failure says what is missing and where
//! the relay kept it.

use std::collections::{BTreeMap, BTreeSet};

use kith_core::membership::Action;
use kith_core::{Client, ContributionView, Membership};

use super::device::Written;
use super::world::World;

/// (author, text), the way the check compares contributions.
type Seen = (String, String);

impl World {
    /// Runs every check in turn; see the module comment.
    pub fn check(&mut self) -> Result<(), String> {
        let by_removed = self.by_removed();
        let remaining: Vec<usize> = (0..self.devices.len())
            .filter(|&d| self.removed_at(d).is_none())
            .collect();
        let alliance = self.devices[0].client.profile().alliance;
        let log = self
            .relay
            .membership(alliance)
            .ok_or("the relay lost the alliance")?
            .clone();
        for &d in &remaining {
            if self.devices[d].client.membership().entries() != log.entries() {
                return Err(format!(
                    "{} holds {} log entries, the relay {}",
                    self.devices[d].name,
                    self.devices[d].client.membership().len(),
                    log.len()
                ));
            }
        }

        // What the steward reads of the cohort is the reference: it must
        // hold every cohort text of the members who stayed, once, and
        // nothing a removed member wrote once removed.
        let reference = cohort(&self.devices[0].reads(&by_removed)?);
        self.check_reference(&reference)?;
        let reference_set = sorted(&reference);
        for &d in &remaining {
            let device = &self.devices[d];
            let name = device.name.clone();
            let views = device.reads(&by_removed)?;
            let research_part = sorted(&research(&views));
            if device.writes() {
                let cohort_part = cohort(&views);
                let expected = readable_by(&reference, &log, &device.client);
                if cohort_part != expected {
                    return Err(self.explain(d, &sorted(&expected), &sorted(&cohort_part)));
                }
                let mut own: Vec<Seen> = device
                    .written
                    .iter()
                    .filter(|w| w.research)
                    .map(|w| (name.clone(), w.text.clone()))
                    .collect();
                own.sort();
                if research_part != own {
                    return Err(format!(
                        "{name} reads research-only texts {research_part:?}, expected its own {own:?}"
                    ));
                }
            } else {
                // The research team reads everything: the cohort as everyone
                // does, and every member's research-only texts.
                let cohort_part = sorted(&cohort(&views));
                if cohort_part != reference_set {
                    return Err(self.explain(d, &reference_set, &cohort_part));
                }
                self.check_research(d, &research_part)?;
            }
            if device.client.pending_uploads() != 0 {
                return Err(format!(
                    "{name} still has {} blobs to send",
                    device.client.pending_uploads()
                ));
            }
            let report = device
                .last_report
                .as_ref()
                .ok_or_else(|| format!("{name} never finished a sync"))?;
            if !report.rejected.is_empty() {
                let blobs: Vec<String> = report
                    .rejected
                    .iter()
                    .map(|r| format!("{r}: {}", self.describe_blob(r.blob())))
                    .collect();
                return Err(format!("{name}'s last sync rejected {blobs:?}"));
            }
            if !report.missing.is_empty() {
                return Err(format!(
                    "{name}'s last sync still misses {:?}",
                    report.missing
                ));
            }
        }
        self.check_rotations(&log)?;
        self.check_removed_cannot_read()?;
        self.check_newcomers_read_no_earlier_chapter(&log, &reference)?;
        // One device still in, chosen by the seed, restarts from its store
        // alone and must read the same (rebuilding every device costs a
        // third of the run time; over many seeds every position gets its
        // turn).
        let d = remaining[self.dice.index(remaining.len())];
        self.restart(d, true)
    }

    /// Every text's writer, removal step and record, by (author, text).
    fn written(&self) -> BTreeMap<Seen, (Option<u64>, &Written)> {
        let mut all = BTreeMap::new();
        for (d, device) in self.devices.iter().enumerate() {
            let removed = self.removed_at(d);
            for w in &device.written {
                all.insert((device.name.clone(), w.text.clone()), (removed, w));
            }
        }
        all
    }

    /// The steward's cohort view: no text twice, none unwritten, every one
    /// of those who stayed, none of a removed member's written once removed.
    fn check_reference(&self, reference: &[ContributionView]) -> Result<(), String> {
        let written = self.written();
        let mut seen = BTreeSet::new();
        for c in reference {
            let key = (c.author.clone(), c.text.clone());
            if !seen.insert(key.clone()) {
                return Err(format!("P0 reads {key:?} twice"));
            }
            match written.get(&key) {
                None => return Err(format!("P0 reads {key:?}, which nobody wrote")),
                Some((Some(removed), w)) if w.step >= *removed => {
                    return Err(format!(
                        "P0 reads {key:?}, written at step {} by a member removed at step {removed}",
                        w.step
                    ));
                }
                Some(_) => {}
            }
        }
        let expected: Vec<Seen> = written
            .iter()
            .filter(|(_, (removed, w))| removed.is_none() && !w.research)
            .map(|(key, _)| key.clone())
            .collect();
        let got: Vec<Seen> = seen.into_iter().collect();
        if expected.iter().any(|e| !got.contains(e)) {
            return Err(self.explain(0, &expected, &got));
        }
        Ok(())
    }

    /// The research team's research-only texts: every one of those who
    /// stayed, none unwritten, none twice, none written once removed.
    fn check_research(&self, d: usize, got: &[Seen]) -> Result<(), String> {
        let written = self.written();
        let name = &self.devices[d].name;
        let mut seen = BTreeSet::new();
        for key in got {
            if !seen.insert(key) {
                return Err(format!("{name} (research) reads {key:?} twice"));
            }
            match written.get(key) {
                Some((None, w)) if w.research => {}
                Some((Some(removed), w)) if w.research && w.step < *removed => {}
                _ => return Err(format!("{name} (research) reads {key:?}, not expected")),
            }
        }
        let missing: Vec<&Seen> = written
            .iter()
            .filter(|(key, (removed, w))| removed.is_none() && w.research && !seen.contains(key))
            .map(|(key, _)| key)
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{name} (research) misses research-only texts {missing:?}"
            ));
        }
        Ok(())
    }

    /// For every removal in the log: each scope the removed member read
    /// that anyone still reads has a newer epoch than before the removal,
    /// and no scope is left stale. (Their own research-only scope has no
    /// reader left, and nobody can write to it any more.)
    fn check_rotations(&self, log: &Membership) -> Result<(), String> {
        let alliance = log.alliance();
        for (index, entry) in log.entries().iter().enumerate() {
            let opened = entry.open().map_err(|e| e.to_string())?;
            let Action::Remove { devices, .. } = opened.action else {
                continue;
            };
            let before = Membership::replay(alliance, &log.entries()[..index])
                .map_err(|e| format!("the log up to entry {index} does not replay: {e}"))?;
            let member = before
                .device(&devices[0])
                .ok_or("a removal names an unknown device")?
                .member;
            for scope in before.scopes_of(&member) {
                if log.readers(scope).is_empty() {
                    continue;
                }
                let old = before.current_epoch(&scope);
                let new = log.current_epoch(&scope);
                if new <= old {
                    return Err(format!(
                        "entry {index} removed a member, but scope {scope} is still at epoch {new:?}"
                    ));
                }
                if log.scope(&scope).is_some_and(|s| s.stale) {
                    return Err(format!("scope {scope} is still marked stale"));
                }
            }
        }
        Ok(())
    }

    /// A removed device, handed every blob the relay holds (and keeping
    /// every key it had), reads no text whose writer had applied the
    /// removal when writing: even while the new key was on its way, such
    /// writing stays on the writer's device until it can be sealed to the
    /// new key (`outbox.rs`). A writer that had not heard of the removal
    /// yet may send with the old key (the documented limitation in
    /// `docs/THREAT_MODEL.md`): such texts, written once the relay had
    /// accepted the removal, are counted, and those of them the removed
    /// device reads are counted apart; neither fails the run.
    fn check_removed_cannot_read(&mut self) -> Result<(), String> {
        let relay_blobs = self.relay.all_blobs();
        for r in 0..self.devices.len() {
            let Some(removed_at) = self.removed_at(r) else {
                continue;
            };
            let removed = &self.devices[r];
            let id = removed.client.device_id();
            let mut blobs = removed.store.blobs().to_vec();
            let own: BTreeSet<_> = blobs.iter().map(|b| b.id).collect();
            blobs.extend(relay_blobs.iter().filter(|b| !own.contains(&b.id)).cloned());
            let (client, _) = Client::load(removed.store.state(), blobs)
                .map_err(|e| format!("{}'s store does not load: {e}", removed.name))?;
            let readable: BTreeSet<Seen> = client
                .contributions()
                .into_iter()
                .map(|c| (c.author, c.text))
                .collect();
            let (mut unaware, mut exposed) = (0, Vec::new());
            for (w, writer) in self.devices.iter().enumerate() {
                if w == r {
                    continue;
                }
                for text in &writer.written {
                    let read = readable.contains(&(writer.name.clone(), text.text.clone()));
                    if text.knew_removed.contains(&id) {
                        if read {
                            return Err(format!(
                                "{} (removed at step {removed_at}) can read {}, which {} wrote at \
                                 step {} after applying the removal (the scope stale in its \
                                 log: {})",
                                removed.name, text.text, writer.name, text.step, text.stale
                            ));
                        }
                    } else if text.step >= removed_at {
                        unaware += 1;
                        if read {
                            exposed.push(format!("{} (step {})", text.text, text.step));
                        }
                    }
                }
            }
            if !exposed.is_empty() {
                let line = format!(
                    "{} (removed) can read {exposed:?}, written before their writers heard of \
                     the removal",
                    removed.name
                );
                self.note(line);
            }
            self.faults.unaware_of_removal += unaware;
            self.faults.readable_by_removed += exposed.len() as u64;
        }
        Ok(())
    }

    /// In a cohort read from join on, a member's device, handed every blob
    /// the relay holds, reads only the texts of the chapters its member
    /// reads: none written in a chapter opened before they were invited.
    fn check_newcomers_read_no_earlier_chapter(
        &self,
        log: &Membership,
        reference: &[ContributionView],
    ) -> Result<(), String> {
        if self.history != kith_core::History::FromJoin {
            return Ok(());
        }
        let relay_blobs = self.relay.all_blobs();
        for device in self.devices.iter().filter(|d| d.writes()) {
            let Some(member) = log.device(&device.client.device_id()).map(|d| d.member) else {
                continue;
            };
            if log.member(&member).is_some_and(|m| m.removed) {
                continue;
            }
            let mut blobs = device.store.blobs().to_vec();
            let own: BTreeSet<_> = blobs.iter().map(|b| b.id).collect();
            blobs.extend(relay_blobs.iter().filter(|b| !own.contains(&b.id)).cloned());
            let (client, _) = Client::load(device.store.state(), blobs)
                .map_err(|e| format!("{}'s store does not load: {e}", device.name))?;
            let allowed: BTreeSet<Seen> = readable_by(reference, log, &client)
                .iter()
                .map(|c| (c.author.clone(), c.text.clone()))
                .collect();
            for c in cohort(&client.contributions()) {
                if !allowed.contains(&(c.author.clone(), c.text.clone())) {
                    return Err(format!(
                        "{}, handed every blob, reads {:?}, written in a chapter opened before they were invited",
                        device.name, c.text
                    ));
                }
            }
        }
        Ok(())
    }

    /// Why device `d` reads `got` instead of `expected`: what is missing
    /// (with where the relay kept it), what is extra, and the gaps it knows.
    fn explain(&self, d: usize, expected: &[Seen], got: &[Seen]) -> String {
        let written = self.written();
        let mut extra: Vec<&Seen> = got.iter().collect();
        let mut missing = Vec::new();
        for e in expected {
            match extra.iter().position(|g| *g == e) {
                Some(at) => {
                    extra.remove(at);
                }
                None => missing.push(e),
            }
        }
        let missing: Vec<String> = missing
            .iter()
            .map(|key| match written.get(*key) {
                Some((removed, w)) => format!(
                    "{} (step {}, blob {}{})",
                    key.1,
                    w.step,
                    self.relay.describe(w.blob),
                    removed.map_or(String::new(), |r| format!(", writer removed at {r}"))
                ),
                None => format!("{key:?} (never written)"),
            })
            .collect();
        let extra: Vec<String> = extra
            .iter()
            .map(|key| match written.get(*key) {
                Some((removed, w)) => format!(
                    "{} (step {}{})",
                    key.1,
                    w.step,
                    removed.map_or(String::new(), |r| format!(", writer removed at {r}"))
                ),
                None => format!("{key:?} (never written)"),
            })
            .collect();
        let role = if self.devices[d].writes() {
            "member"
        } else {
            "research"
        };
        format!(
            "{} ({role} device) reads {} of {} expected; missing {missing:?}; extra {extra:?}; \
             its gaps {:?}",
            self.devices[d].name,
            got.len() - extra.len(),
            expected.len(),
            self.devices[d].client.gaps()
        )
    }
}

/// The cohort contributions of a view (research-only texts end in `-r`).
fn cohort(views: &[ContributionView]) -> Vec<ContributionView> {
    views
        .iter()
        .filter(|c| !c.text.ends_with("-r"))
        .map(|c| ContributionView {
            // Whether an item is the viewer's own differs between viewers.
            mine: false,
            ..c.clone()
        })
        .collect()
}

/// The part of the reference `client`'s member reads: every text, except
/// in a cohort read from join on, those of the chapters opened before they
/// were invited.
fn readable_by(
    reference: &[ContributionView],
    log: &Membership,
    client: &Client,
) -> Vec<ContributionView> {
    let member = client.profile().member;
    reference
        .iter()
        .filter(|c| {
            c.scope
                .is_none_or(|scope| log.member_reads(&member, &scope))
        })
        .cloned()
        .collect()
}

/// The research-only contributions of a view.
fn research(views: &[ContributionView]) -> Vec<ContributionView> {
    views
        .iter()
        .filter(|c| c.text.ends_with("-r"))
        .cloned()
        .collect()
}

/// A view as sorted (author, text) pairs.
fn sorted(views: &[ContributionView]) -> Vec<Seen> {
    let mut all: Vec<Seen> = views
        .iter()
        .map(|c| (c.author.clone(), c.text.clone()))
        .collect();
    all.sort();
    all
}
