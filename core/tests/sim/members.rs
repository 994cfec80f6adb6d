//! Membership events, driven as a driver (the CLI) drives them: the steward
//! syncs, then publishes an invite or sends a removal; a new device joins
//! through the `Joining` state machine, one request per step, so other
//! devices act (and the log moves) between its redeem and its join. Every
//! request goes through the same faulty network as sync. The steward's sync
//! and the change it then sends run with no other device acting in between
//! (one CLI command); what reaches the relay later (a lost request's change,
//! re-sent by a later sync) races with everyone.

use kith_core::{Joining, Role};

use super::device::Device;
use super::world::World;

/// How long an invite stays valid (the sim's clock is a step per ms).
const INVITE_MS: u64 = 7 * 24 * 3600 * 1000;
/// The most attempts at one event after healing, when nothing can fail.
const HEALED_ATTEMPTS: usize = 50;
/// How often, per mille, the member being removed writes and syncs between
/// the steward's sync and its removal (a race the CLI's command has too).
const WRITES_MEANWHILE: u64 = 300;

/// Membership events still to come, chosen by the seed.
#[derive(Debug, Default)]
pub struct Plan {
    /// Steps from which the steward invites a new member, earliest first.
    pub invites: Vec<u64>,
    /// Steps from which the steward removes a member, earliest first.
    pub removals: Vec<u64>,
    /// The device being removed, once the first attempt chose it.
    pub removing: Option<usize>,
}

impl Plan {
    /// Moves every planned step `by` steps later.
    pub fn shift(&mut self, by: u64) {
        for due in self.invites.iter_mut().chain(&mut self.removals) {
            *due += by;
        }
    }
}

/// A device on its way in.
pub struct PendingJoin {
    joining: Joining,
    name: String,
    role: Role,
    /// From this step on it goes ahead.
    due: u64,
    /// Key rotations in the log when its invite was made.
    rotations_at_invite: usize,
    /// Invited after setup.
    mid_run: bool,
}

impl World {
    /// During the storm: if a membership event is due, it may take this
    /// step (the dice decide, so other devices act in between). Returns
    /// whether it did.
    pub(super) fn membership_event(&mut self) -> Result<bool, String> {
        let step = self.step;
        if self.joining.as_ref().is_some_and(|j| j.due <= step) && self.dice.chance(400) {
            self.join_step()?;
            return Ok(true);
        }
        if self.plan.removals.first().is_some_and(|&due| due <= step) && self.dice.chance(200) {
            if self.try_remove()? {
                self.plan.removals.remove(0);
            }
            return Ok(true);
        }
        let invite_due = self.plan.invites.first().is_some_and(|&due| due <= step);
        if invite_due && self.joining.is_none() && self.dice.chance(200) {
            if self.try_invite(Role::Member, true)? {
                self.plan.invites.remove(0);
            }
            return Ok(true);
        }
        Ok(false)
    }

    /// After healing: every event still planned happens now.
    pub(super) fn finish_events(&mut self) -> Result<(), String> {
        for _ in 0..HEALED_ATTEMPTS {
            if !self.plan.removals.is_empty() {
                if self.try_remove()? {
                    self.plan.removals.remove(0);
                }
            } else if self.joining.is_some() {
                self.join_step()?;
            } else if !self.plan.invites.is_empty() {
                if self.try_invite(Role::Member, true)? {
                    self.plan.invites.remove(0);
                }
            } else {
                return Ok(());
            }
        }
        Err("membership events did not complete after healing".into())
    }

    /// During setup: invites a member (or researcher) and sees them join.
    pub(super) fn invite_and_join(&mut self, role: Role) -> Result<(), String> {
        let before = self.devices.len();
        for _ in 0..400 {
            if self.joining.is_some() {
                self.join_step()?;
            } else if self.devices.len() > before {
                return Ok(());
            } else {
                self.try_invite(role, false)?;
            }
        }
        Err(format!("the {} never joined", role.as_str()))
    }

    /// One attempt by the steward to invite someone: sync (as `kith invite`
    /// does), then publish. On success the new device will start joining a
    /// little later. Returns whether the relay took the invite.
    fn try_invite(&mut self, role: Role, mid_run: bool) -> Result<bool, String> {
        self.note(format!("P0 invites a {}", role.as_str()));
        if self.sync_once(0)?.is_none() {
            self.note("P0's sync before inviting stopped; it tries later".into());
            return Ok(false);
        }
        self.step += 1;
        let now = self.now();
        let (invite, request) = self.devices[0]
            .client
            .create_invite(role, None, INVITE_MS, now, &mut self.rng)
            .map_err(|e| format!("P0 could not make an invite: {e}"))?;
        match self.deliver(&request) {
            Some(r) if (200..300).contains(&r.status) => {}
            Some(r) if r.status == 409 || r.status == 503 => return Ok(false),
            Some(r) => {
                return Err(format!(
                    "the relay refused P0's invite: {} {}",
                    r.status,
                    String::from_utf8_lossy(&r.body)
                ));
            }
            // Unsure whether it was published: the steward makes another.
            None => return Ok(false),
        }
        if mid_run {
            self.faults.mid_run_invite += 1;
        }
        let name = format!("P{}", self.devices.len());
        let joining = Joining::new(&invite.link(), &name, &mut self.rng)
            .map_err(|e| format!("{name} could not read the invite: {e}"))?;
        let due = if mid_run {
            self.step + self.dice.range(1, 40)
        } else {
            0
        };
        self.joining = Some(PendingJoin {
            joining,
            name,
            role,
            due,
            rotations_at_invite: self.relay.rotations(),
            mid_run,
        });
        Ok(true)
    }

    /// One request of the joining device, or, once it has joined, its
    /// arrival as a device of the world.
    fn join_step(&mut self) -> Result<(), String> {
        let Some(mut join) = self.joining.take() else {
            return Ok(());
        };
        self.step += 1;
        let now = self.now();
        let Some(request) = join.joining.next_request(now, &mut self.rng) else {
            let (client, ops) = join
                .joining
                .finish(now, &mut self.rng)
                .map_err(|e| format!("{} could not finish joining: {e}", join.name))?;
            let mut device = Device::new(join.name.clone(), client, ops)?;
            if join.role == Role::Researcher {
                device.research_identity = self.research_identity.clone();
            }
            self.devices.push(device);
            let rotated = self.relay.rotations() > join.rotations_at_invite;
            if join.mid_run {
                self.faults.mid_run_join += 1;
            }
            if rotated {
                self.faults.join_after_rotation += 1;
            }
            self.note(format!(
                "{} has joined (keys rotated since the invite: {rotated})",
                join.name
            ));
            return Ok(());
        };
        self.note(format!("{} joins", join.name));
        if let Some(response) = self.deliver(&request) {
            let status = response.status;
            match join.joining.receive(response, now, &mut self.rng) {
                Ok(()) if status == 409 => {
                    self.faults.join_restarted += 1;
                    self.note(format!("{} starts joining over", join.name));
                }
                Ok(()) => {}
                // Asked again at its next step.
                Err(_) if status == 503 => {}
                Err(e) => {
                    return Err(format!(
                        "{} could not join (answer {status}): {e}",
                        join.name
                    ));
                }
            }
        }
        self.joining = Some(join);
        Ok(())
    }

    /// One attempt by the steward to remove a member: sync (as `kith member
    /// remove` does), then send the removal and its key rotations. Returns
    /// whether the member is now removed (or nobody was left to remove).
    fn try_remove(&mut self) -> Result<bool, String> {
        let target = match self.plan.removing {
            Some(target) => target,
            None => {
                let candidates: Vec<usize> = (1..self.devices.len())
                    .filter(|&d| self.devices[d].writes() && self.removed_at(d).is_none())
                    .collect();
                if candidates.is_empty() {
                    self.note("P0 has nobody to remove".into());
                    return Ok(true);
                }
                let target = candidates[self.dice.index(candidates.len())];
                self.plan.removing = Some(target);
                target
            }
        };
        let name = self.devices[target].name.clone();
        self.note(format!("P0 removes {name}"));
        if self.sync_once(0)?.is_none() {
            self.note("P0's sync before removing stopped; it tries later".into());
            return Ok(false);
        }
        let member = self.devices[target].client.profile().member;
        let gone = self.devices[0]
            .client
            .membership()
            .member(&member)
            .is_some_and(|m| m.removed);
        if gone {
            // An earlier attempt got through (its answer was lost).
            self.note(format!("P0 sees {name} removed"));
            self.plan.removing = None;
            return Ok(true);
        }
        if self.dice.chance(WRITES_MEANWHILE) {
            // The removal's cutoff is then behind what the relay holds, if
            // the text got there: the relay refuses the removal (409), and
            // the steward syncs and tries again.
            self.note(format!("meanwhile {name} writes and syncs"));
            self.step += 1;
            self.contribute(target)?;
            self.sync_once(target)?;
        }
        self.step += 1;
        let now = self.now();
        let (request, ops) = self.devices[0]
            .client
            .remove_member(member, now, &mut self.rng)
            .map_err(|e| format!("P0 could not remove {name}: {e}"))?;
        let (_, crashed) = self.persist(0, ops)?;
        if crashed {
            // The change was not saved, so it is not sent.
            return Ok(false);
        }
        let status = match self.deliver(&request) {
            Some(r) => r.status,
            // Unsure: the change stays pending, and the next sync settles it.
            None => return Ok(false),
        };
        if (200..300).contains(&status) {
            let ops = self.devices[0]
                .client
                .change_accepted()
                .map_err(|e| format!("P0 could not keep its removal of {name}: {e}"))?;
            self.persist(0, ops)?;
            self.note(format!("P0 removed {name}"));
            self.plan.removing = None;
            return Ok(true);
        }
        if status != 409 && status != 503 {
            return Err(format!("the relay refused the removal of {name}: {status}"));
        }
        let ops = self.devices[0].client.change_refused();
        self.persist(0, ops)?;
        Ok(false)
    }
}
