//! The rules: who may append which entry, checked against everything
//! before it. Each check comes before any change, and `apply` works on a
//! copy, so a refused entry changes nothing.

use std::collections::BTreeMap;

use super::{
    Action, Cutoff, DeviceInfo, DeviceKeysPublic, Entry, History, InviteInfo, LogError, MemberInfo,
    Membership, ScopeInfo, ScopeKind, join_proof_message,
};
use crate::ids::{DeviceId, InviteId, MemberId, ScopeId};
use crate::keys::{Recipient, verify};
use crate::release::ReleaseKey;
use crate::role::Role;

impl Membership {
    pub(super) fn act(&mut self, entry: &Entry) -> Result<(), LogError> {
        if entry.index == 0 {
            return self.create(entry);
        }
        if let Action::Join {
            invite,
            device,
            proof,
            sealed_pseudonym,
        } = &entry.action
        {
            return self.join(entry, *invite, device, proof, sealed_pseudonym);
        }
        let author = self
            .devices
            .get(&entry.author)
            .filter(|d| d.active)
            .ok_or(LogError::Unauthorised(
                "the author is not a device in the alliance",
            ))?
            .member;
        match &entry.action {
            Action::Create { .. } => Err(LogError::Invalid("the alliance already exists")),
            Action::Join { .. } => unreachable!("handled above"),
            Action::OpenScope {
                scope,
                kind,
                recipient,
                sealed_name,
            } => self.open_scope(author, entry.index, *scope, *kind, recipient, sealed_name),
            Action::OpenCohort {
                scope,
                recipient,
                sealed_name,
                history,
            } => {
                self.open_scope(
                    author,
                    entry.index,
                    *scope,
                    ScopeKind::Cohort,
                    recipient,
                    sealed_name,
                )?;
                self.scopes.get_mut(scope).expect("opened").history = *history;
                Ok(())
            }
            Action::NewChapter {
                cohort,
                scope,
                recipient,
            } => self.new_chapter(author, entry.index, *cohort, *scope, recipient),
            Action::Rotate {
                scope,
                epoch,
                recipient,
            } => self.rotate(entry.author, *scope, *epoch, recipient),
            Action::Invite {
                invite,
                key,
                member,
                role,
                cohort,
                recipient,
                expires_at,
            } => {
                let info = InviteInfo {
                    key: *key,
                    member: *member,
                    role: *role,
                    cohort: *cohort,
                    recipient: recipient.clone(),
                    expires_at: *expires_at,
                    made_by: entry.author,
                    made_at: entry.index,
                    used_by: None,
                    cancelled: false,
                };
                self.add_invite(author, *invite, info)
            }
            Action::CancelInvite { invite } => self.cancel_invite(author, *invite),
            Action::Remove {
                devices,
                whole_member,
                cutoffs,
            } => self.remove(author, devices, *whole_member, cutoffs),
            Action::ResearchTeam { recipients } => self.change_research_team(author, recipients),
            Action::PinReleaseKey { key } => self.pin_release_key(author, *key),
        }
    }

    /// Whether a steward other than `member` still has an active device.
    fn has_another_steward(&self, member: MemberId) -> bool {
        self.devices.values().any(|d| {
            d.active && d.member != member && self.members[&d.member].role == Role::Steward
        })
    }

    fn pin_release_key(&mut self, author: MemberId, key: Option<[u8; 32]>) -> Result<(), LogError> {
        if self.members[&author].role != Role::Steward {
            return Err(LogError::Unauthorised(
                "only a steward pins the app's release key",
            ));
        }
        let key = key
            .map(ReleaseKey::from_bytes)
            .transpose()
            .map_err(|_| LogError::Invalid("the release key is not an Ed25519 key"))?;
        if key == self.release_key {
            return Err(LogError::Invalid("that release key is already pinned"));
        }
        self.release_key = key;
        Ok(())
    }

    fn change_research_team(
        &mut self,
        author: MemberId,
        recipients: &[String],
    ) -> Result<(), LogError> {
        if self.members[&author].role != Role::Steward {
            return Err(LogError::Unauthorised(
                "only a steward changes the research team",
            ));
        }
        for r in recipients {
            check_recipient(r)?;
        }
        let mut distinct = recipients.to_vec();
        distinct.sort();
        distinct.dedup();
        if distinct.len() != recipients.len() {
            return Err(LogError::Invalid("a research-team key is named twice"));
        }
        if recipients == self.research.as_slice() {
            return Err(LogError::Invalid(
                "the research team already has these keys",
            ));
        }
        self.research = recipients.to_vec();
        self.research_changes += 1;
        // Every key the team held is known to whoever held a key now gone:
        // each scope's readers replace it (the steward at once, where it reads).
        for info in self.scopes.values_mut() {
            info.stale = true;
        }
        Ok(())
    }

    fn create(&mut self, entry: &Entry) -> Result<(), LogError> {
        let Action::Create {
            steward,
            device,
            cohort,
            research,
            sealed_pseudonym,
        } = &entry.action
        else {
            return Err(LogError::Invalid(
                "the first entry must create the alliance",
            ));
        };
        if device.device != entry.author {
            return Err(LogError::Unauthorised(
                "the steward's own device must create the alliance",
            ));
        }
        check_recipient(&device.recipient)?;
        for r in research {
            check_recipient(r)?;
        }
        self.research = research.clone();
        self.members.insert(
            *steward,
            MemberInfo {
                role: Role::Steward,
                cohort: Some(*cohort),
                removed: false,
                sealed_pseudonym: sealed_pseudonym.clone(),
                research_scope: None,
                joined: 0,
                since: 0,
            },
        );
        self.devices.insert(
            device.device,
            DeviceInfo {
                member: *steward,
                recipient: device.recipient.clone(),
                active: true,
                cutoffs: BTreeMap::new(),
            },
        );
        Ok(())
    }

    fn open_scope(
        &mut self,
        author: MemberId,
        index: u64,
        scope: ScopeId,
        kind: ScopeKind,
        recipient: &str,
        sealed_name: &[u8],
    ) -> Result<(), LogError> {
        check_recipient(recipient)?;
        if self.scopes.contains_key(&scope) {
            return Err(LogError::Invalid("this scope already exists"));
        }
        let role = self.members[&author].role;
        match kind {
            ScopeKind::Alliance => {
                if self.alliance_scope.is_some() {
                    return Err(LogError::Invalid("the alliance scope already exists"));
                }
                if role != Role::Steward {
                    return Err(LogError::Unauthorised(
                        "only a steward opens the alliance scope",
                    ));
                }
                self.alliance_scope = Some(scope);
            }
            ScopeKind::Cohort => {
                if role != Role::Steward {
                    return Err(LogError::Unauthorised("only a steward creates cohorts"));
                }
            }
            ScopeKind::Research(member) => {
                if member != author {
                    return Err(LogError::Unauthorised(
                        "only a member's own device opens their research-only scope",
                    ));
                }
                let info = self
                    .members
                    .get_mut(&member)
                    .expect("the author is a member");
                if info.research_scope.is_some() {
                    return Err(LogError::Invalid(
                        "this member's research scope already exists",
                    ));
                }
                info.research_scope = Some(scope);
            }
        }
        self.scopes.insert(
            scope,
            ScopeInfo {
                kind,
                epochs: vec![recipient.to_owned()],
                sealed_name: sealed_name.to_vec(),
                stale: false,
                research_team_at: self.research_changes,
                history: History::Whole,
                chapter_of: None,
                opened_at: index,
            },
        );
        // A steward who opens a cohort they are not in knows its first key:
        // its first reader to arrive replaces it.
        let stale = !self.member_reads(&author, &scope);
        self.scopes.get_mut(&scope).expect("inserted").stale = stale;
        Ok(())
    }

    fn new_chapter(
        &mut self,
        author: MemberId,
        index: u64,
        cohort: ScopeId,
        scope: ScopeId,
        recipient: &str,
    ) -> Result<(), LogError> {
        check_recipient(recipient)?;
        if self.scopes.contains_key(&scope) {
            return Err(LogError::Invalid("this scope already exists"));
        }
        let opened = self.scopes.get(&cohort);
        if !opened.is_some_and(|s| s.kind == ScopeKind::Cohort && s.chapter_of.is_none()) {
            return Err(LogError::Invalid("no such cohort"));
        }
        if self.members[&author].cohort != Some(cohort) {
            return Err(LogError::Unauthorised(
                "only a member of a cohort opens its next chapter",
            ));
        }
        if !self.chapter_owed(&cohort) {
            return Err(LogError::Invalid(
                "no one has been invited to this cohort since its newest chapter opened",
            ));
        }
        self.scopes.insert(
            scope,
            ScopeInfo {
                kind: ScopeKind::Cohort,
                epochs: vec![recipient.to_owned()],
                sealed_name: Vec::new(),
                stale: false,
                research_team_at: self.research_changes,
                history: History::FromJoin,
                chapter_of: Some(cohort),
                opened_at: index,
            },
        );
        Ok(())
    }

    fn rotate(
        &mut self,
        author: DeviceId,
        scope: ScopeId,
        epoch: u32,
        recipient: &str,
    ) -> Result<(), LogError> {
        check_recipient(recipient)?;
        if !self.readers(scope).iter().any(|(d, _)| *d == author) {
            return Err(LogError::Unauthorised(
                "only a device that reads a scope rotates its key",
            ));
        }
        let info = self
            .scopes
            .get_mut(&scope)
            .expect("a scope with readers exists");
        if epoch as usize != info.epochs.len() {
            return Err(LogError::Invalid("the new epoch must follow the last one"));
        }
        info.epochs.push(recipient.to_owned());
        info.stale = false;
        info.research_team_at = self.research_changes;
        Ok(())
    }

    fn add_invite(
        &mut self,
        author: MemberId,
        id: InviteId,
        invite: InviteInfo,
    ) -> Result<(), LogError> {
        check_recipient(&invite.recipient)?;
        if self.invites.contains_key(&id) {
            return Err(LogError::Invalid("an invite with this id exists"));
        }
        ed25519_dalek::VerifyingKey::from_bytes(&invite.key)
            .map_err(|_| LogError::Invalid("the invite key is not a key"))?;
        match self.members.get(&invite.member) {
            Some(existing) => {
                // A new device for an existing member: only from that member's own device.
                if existing.removed || invite.member != author {
                    return Err(LogError::Unauthorised(
                        "only a member's own device adds a device for them",
                    ));
                }
                if existing.role != invite.role || existing.cohort != invite.cohort {
                    return Err(LogError::Invalid(
                        "an added device keeps its member's role and cohort",
                    ));
                }
            }
            None => {
                if self.invites.values().any(|i| i.member == invite.member) {
                    return Err(LogError::Invalid("another invite is for this member"));
                }
                let inviter = &self.members[&author];
                if !inviter.role.may_invite() {
                    return Err(LogError::Unauthorised(
                        "only a steward or facilitator invites",
                    ));
                }
                if invite.role == Role::Steward && inviter.role != Role::Steward {
                    return Err(LogError::Unauthorised(
                        "only a steward makes another steward",
                    ));
                }
                match (invite.role, invite.cohort) {
                    (Role::Researcher, None) => {}
                    (Role::Researcher, Some(_)) => {
                        return Err(LogError::Invalid("researchers are not in a cohort"));
                    }
                    (_, None) => return Err(LogError::Invalid("a member needs a cohort")),
                    (_, Some(cohort)) => {
                        if self.scopes.get(&cohort).map(|s| s.kind) != Some(ScopeKind::Cohort) {
                            return Err(LogError::Invalid("no such cohort"));
                        }
                        if inviter.role == Role::Facilitator && inviter.cohort != Some(cohort) {
                            return Err(LogError::Unauthorised(
                                "a facilitator invites only into their own cohort",
                            ));
                        }
                    }
                }
            }
        }
        self.invites.insert(id, invite);
        Ok(())
    }

    fn join(
        &mut self,
        entry: &Entry,
        invite_id: InviteId,
        device: &DeviceKeysPublic,
        proof: &[u8],
        sealed_pseudonym: &[u8],
    ) -> Result<(), LogError> {
        if device.device != entry.author {
            return Err(LogError::Unauthorised("a device joins only by itself"));
        }
        check_recipient(&device.recipient)?;
        if self.devices.contains_key(&device.device) {
            return Err(LogError::Invalid("this device is already known"));
        }
        let invite = self
            .invites
            .get(&invite_id)
            .ok_or(LogError::Invalid("no such invite"))?;
        if invite.used_by.is_some() {
            return Err(LogError::Invalid("this invite was already used"));
        }
        if invite.cancelled {
            return Err(LogError::Invalid("this invite was cancelled"));
        }
        let message = join_proof_message(self.alliance, invite_id, device);
        if !verify(&DeviceId(invite.key), &message, proof) {
            return Err(LogError::Unauthorised(
                "the join does not prove it holds the invite",
            ));
        }
        let member = invite.member;
        let joined = self.members.len();
        let info = self.members.entry(member).or_insert_with(|| MemberInfo {
            role: invite.role,
            cohort: invite.cohort,
            removed: false,
            sealed_pseudonym: sealed_pseudonym.to_vec(),
            research_scope: None,
            joined,
            since: invite.made_at,
        });
        if info.removed {
            return Err(LogError::Invalid("this member has left"));
        }
        self.devices.insert(
            device.device,
            DeviceInfo {
                member,
                recipient: device.recipient.clone(),
                active: true,
                cutoffs: BTreeMap::new(),
            },
        );
        self.invites
            .get_mut(&invite_id)
            .expect("checked above")
            .used_by = Some(device.device);
        Ok(())
    }

    fn remove(
        &mut self,
        author: MemberId,
        devices: &[DeviceId],
        whole_member: bool,
        cutoffs: &[Cutoff],
    ) -> Result<(), LogError> {
        let first = devices
            .first()
            .ok_or(LogError::Invalid("name at least one device"))?;
        let target = self
            .devices
            .get(first)
            .ok_or(LogError::Invalid("no such device"))?
            .member;
        for device in devices {
            match self.devices.get(device) {
                Some(d) if d.active && d.member == target => {}
                _ => {
                    return Err(LogError::Invalid(
                        "every device removed must be an active device of one member",
                    ));
                }
            }
        }
        if cutoffs.iter().any(|c| !devices.contains(&c.device)) {
            return Err(LogError::Invalid(
                "a cutoff names a device not being removed",
            ));
        }
        let target_info = &self.members[&target];
        let author_info = &self.members[&author];
        let manages = author_info.role == Role::Steward
            || (author_info.role == Role::Facilitator && author_info.cohort == target_info.cohort);
        let remaining = self
            .devices
            .iter()
            .filter(|(id, d)| d.active && d.member == target && !devices.contains(id))
            .count();
        if whole_member {
            if remaining > 0 {
                return Err(LogError::Invalid(
                    "removing a member removes all their devices",
                ));
            }
            if target_info.role == Role::Steward {
                if author_info.role != Role::Steward {
                    return Err(LogError::Unauthorised("only a steward removes a steward"));
                }
                if !self.has_another_steward(target) {
                    return Err(LogError::Invalid(
                        "the last steward cannot be removed; invite another steward first",
                    ));
                }
            }
            if !manages && target != author {
                return Err(LogError::Unauthorised(
                    "only a steward, or the facilitator of their cohort, removes a member",
                ));
            }
        } else {
            if remaining == 0 {
                return Err(LogError::Invalid(
                    "a member's last device cannot be unlinked; remove the member instead",
                ));
            }
            if target != author && !manages {
                return Err(LogError::Unauthorised(
                    "only the member's own devices, or a steward or their facilitator, unlink a device",
                ));
            }
        }
        for scope in self.scopes_of(&target) {
            self.scopes.get_mut(&scope).expect("listed").stale = true;
        }
        for device in devices {
            let info = self.devices.get_mut(device).expect("checked above");
            info.active = false;
            info.cutoffs = cutoffs
                .iter()
                .filter(|c| c.device == *device)
                .map(|c| (c.scope, c.seq))
                .collect();
        }
        if whole_member {
            self.members.get_mut(&target).expect("exists").removed = true;
        }
        // What a removed device set in motion stops with it: its unused
        // invites and link codes (and, for a member who leaves, any link
        // code that would add a device for them).
        for invite in self.invites.values_mut() {
            let made_here = devices.contains(&invite.made_by);
            let for_them = whole_member && invite.member == target;
            if invite.used_by.is_none() && (made_here || for_them) {
                invite.cancelled = true;
            }
        }
        Ok(())
    }

    /// Cancels an unused invite: its maker's member, a steward, or the
    /// facilitator of the cohort it joins may.
    fn cancel_invite(&mut self, author: MemberId, id: InviteId) -> Result<(), LogError> {
        let invite = self
            .invites
            .get(&id)
            .ok_or(LogError::Invalid("no such invite"))?;
        if invite.used_by.is_some() || invite.cancelled {
            return Err(LogError::Invalid(
                "this invite was already used or cancelled",
            ));
        }
        let maker = self.devices.get(&invite.made_by).map(|d| d.member);
        let by = &self.members[&author];
        let may = maker == Some(author)
            || by.role == Role::Steward
            || (by.role == Role::Facilitator
                && invite.cohort.is_some()
                && by.cohort == invite.cohort);
        if !may {
            return Err(LogError::Unauthorised(
                "only its maker, a steward or the cohort's facilitator cancels an invite",
            ));
        }
        self.invites.get_mut(&id).expect("found above").cancelled = true;
        Ok(())
    }
}

fn check_recipient(text: &str) -> Result<(), LogError> {
    Recipient::parse(text)
        .map(|_| ())
        .map_err(|_| LogError::Invalid("a recipient is not an age recipient"))
}
