//! Changes to the membership: creating the alliance, invites, cohorts,
//! removing members and unlinking devices, and the key rotations that
//! follow a removal.
//!
//! A change that makes new keys is saved on the device as *pending* before
//! it is sent, so a crash after sending never loses a key the log already
//! names; the next sync confirms it (its entries are in the log) or drops it.

use rand_core::CryptoRngCore;

use crate::api::json;
use crate::api::{self, AppendLog, HttpRequest, PublishInvite, RegisterAlliance, Role};
use crate::client::{Client, PendingChange, check_name};
use crate::envelope::{INVITE_LABEL, seal};
use crate::error::Error;
use crate::ids::{AllianceId, DeviceId, InviteId, MemberId, ScopeId};
use crate::invite::{Invite, InvitePackage};
use crate::keys::{DeviceKeys, EpochKey, Recipient};
use crate::membership::{
    Action, Cutoff, DeviceKeysPublic, History, Membership, ScopeKind, SignedEntry,
};
use crate::names::seal_name;
use crate::payload::Grant;
use crate::release::ReleaseKey;
use crate::state::{Profile, StoreOp};
use crate::time::Timestamp;

/// What a steward gives to create an alliance.
pub struct NewAlliance {
    /// The alliance's name.
    pub name: String,
    /// The name of its first cohort (the steward's own).
    pub cohort: String,
    /// The relay's base URL.
    pub relay: String,
    /// The steward's pseudonym.
    pub pseudonym: String,
    /// The research team's age recipients.
    pub researchers: Vec<Recipient>,
    /// What a member who joins the first cohort later reads of it.
    pub history: History,
}

impl Client {
    /// A steward creates a new alliance: the first entries of its membership
    /// log, its first cohort, and the keys of the alliance, cohort and
    /// steward's research-only scopes. Grants of those keys to the research
    /// team wait in the outbox for the first sync.
    pub fn create_alliance(
        new: NewAlliance,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Self, Vec<StoreOp>), Error> {
        let keys = DeviceKeys::generate(rng);
        let alliance = AllianceId::random(rng);
        let member = MemberId::random(rng);
        let alliance_name = check_name(&new.name, "alliance name")?;
        let cohort_name = check_name(&new.cohort, "cohort name")?;
        let pseudonym = check_name(&new.pseudonym, "pseudonym")?;
        let alliance_key = EpochKey::generate(ScopeId::random(rng), 0, rng);
        let cohort_key = EpochKey::generate(ScopeId::random(rng), 0, rng);
        let research_key = EpochKey::generate(ScopeId::random(rng), 0, rng);
        let sealed_to = alliance_key.identity.recipient().to_string();

        let mut membership = Membership::new(alliance);
        membership.append(
            &keys,
            Action::Create {
                steward: member,
                device: device_public_keys(&keys),
                cohort: cohort_key.scope,
                research: new.researchers.iter().map(|r| r.to_string()).collect(),
                sealed_pseudonym: seal_name(&pseudonym, &sealed_to)?,
            },
            now,
        )?;
        let open_scope = |key: &EpochKey, kind, sealed_name| Action::OpenScope {
            scope: key.scope,
            kind,
            recipient: key.identity.recipient().to_string(),
            sealed_name,
        };
        let open_alliance = open_scope(
            &alliance_key,
            ScopeKind::Alliance,
            seal_name(&alliance_name, &sealed_to)?,
        );
        let open_cohort = Action::OpenCohort {
            scope: cohort_key.scope,
            recipient: cohort_key.identity.recipient().to_string(),
            sealed_name: seal_name(&cohort_name, &sealed_to)?,
            history: new.history,
        };
        let open_research = open_scope(&research_key, ScopeKind::Research(member), Vec::new());
        for action in [open_alliance, open_cohort, open_research] {
            membership.append(&keys, action, now)?;
        }
        let profile = Profile {
            alliance,
            alliance_name,
            relay: new.relay.trim_end_matches('/').to_owned(),
            pseudonym,
            member,
        };
        let epoch_keys = vec![alliance_key, cohort_key, research_key];
        let mut client = Self::assemble(keys, profile, membership, epoch_keys.clone(), None);
        let mut ops = client.grant_new_keys(&epoch_keys, now, rng)?;
        ops.push(StoreOp::PutState(client.saved().encode()));
        Ok((client, ops))
    }

    /// The request that registers a newly created alliance with a relay
    /// whose registration is open to anyone.
    pub fn register_request(&self, now: Timestamp, rng: &mut impl CryptoRngCore) -> HttpRequest {
        self.register_request_with_token(None, now, rng)
    }

    /// The request that registers a newly created alliance with the relay,
    /// spending `token`, a one-use registration token from its operator.
    pub fn register_request_with_token(
        &self,
        token: Option<&str>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> HttpRequest {
        let body = RegisterAlliance {
            alliance_id: self.profile.alliance,
            log: self.membership.entries().to_vec(),
            registration_token: token.map(|t| t.trim().to_owned()),
        };
        self.sign_request("POST", api::paths::alliances(), json(&body), now, rng)
    }

    /// Makes an invite for a new member (`role`, in `cohort`; the inviter's
    /// own cohort when none is given). Returns the link to give them and the
    /// request that publishes it; it works once the relay answers 2xx.
    pub fn create_invite(
        &self,
        role: Role,
        cohort: Option<ScopeId>,
        valid_for_ms: u64,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Invite, HttpRequest), Error> {
        if !self.role().may_invite() {
            return Err(Error::NotAllowed(
                "only a steward or facilitator can invite",
            ));
        }
        if role == Role::Steward && self.role() != Role::Steward {
            return Err(Error::NotAllowed("only a steward can make another steward"));
        }
        let cohort = match role {
            Role::Researcher => None,
            Role::Member | Role::Facilitator | Role::Steward => Some(
                cohort
                    .or(self.cohort())
                    .ok_or(Error::Invalid("name the cohort the new member joins"))?,
            ),
        };
        self.invite_for(
            MemberId::random(rng),
            role,
            cohort,
            None,
            valid_for_ms,
            now,
            rng,
        )
    }

    /// Makes a one-time code that adds another device to this member (a
    /// phone beside a laptop). The new device reads and writes as this
    /// member does.
    pub fn create_device_link(
        &self,
        valid_for_ms: u64,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Invite, HttpRequest), Error> {
        let pseudonym = Some(self.profile.pseudonym.clone());
        self.invite_for(
            self.profile.member,
            self.role(),
            self.cohort(),
            pseudonym,
            valid_for_ms,
            now,
            rng,
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn invite_for(
        &self,
        member: MemberId,
        role: Role,
        cohort: Option<ScopeId>,
        pseudonym: Option<String>,
        valid_for_ms: u64,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Invite, HttpRequest), Error> {
        self.require_active()?;
        let log_root = self.membership.root().ok_or(Error::SyncFirst(
            "this device has no membership log yet; sync first",
        ))?;
        let invite = Invite::generate(
            &self.profile.relay,
            self.profile.alliance,
            self.device_id(),
            log_root,
            rng,
        );
        let expires_at = now.plus_millis(valid_for_ms);
        let mut draft = self.membership.clone();
        let entry = draft.append(
            &self.keys,
            Action::Invite {
                invite: invite.invite,
                key: invite.public_key(),
                member,
                role,
                cohort,
                recipient: invite.identity().recipient().to_string(),
                expires_at,
            },
            now,
        )?;
        // Every key of every scope the new device will read, all epochs.
        let mut grants = Vec::new();
        for scope in draft.scopes_for_invite(&invite.invite) {
            let current = draft.current_epoch(&scope).unwrap_or(0);
            let held: Vec<&EpochKey> = self
                .reader
                .epoch_keys()
                .iter()
                .chain(&self.custody)
                .filter(|k| k.scope == scope)
                .collect();
            if !held.iter().any(|k| k.epoch == current) {
                return Err(Error::SyncFirst(
                    "this device does not hold the newest key of that cohort; ask its facilitator to invite",
                ));
            }
            grants.extend(held.into_iter().map(Grant::of));
        }
        let package = InvitePackage {
            alliance: self.profile.alliance,
            alliance_name: self.profile.alliance_name.clone(),
            invite: invite.invite,
            member,
            role,
            cohort,
            pseudonym,
            grants,
        };
        let (package, _) = seal(
            INVITE_LABEL,
            &package,
            &self.keys,
            &[&invite.identity().recipient()],
        )?;
        let body = PublishInvite {
            invite_id: invite.invite,
            token_sha256: invite.token_sha256(),
            expires_at,
            entry,
            package,
        };
        let request = self.sign_request(
            "POST",
            api::paths::invites(self.profile.alliance),
            json(&body),
            now,
            rng,
        );
        Ok((invite, request))
    }

    /// Creates a cohort. Returns the request to send and what to persist
    /// first; call [`Client::change_accepted`] or [`Client::change_refused`]
    /// with the relay's answer.
    pub fn create_cohort(
        &mut self,
        name: &str,
        history: History,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        self.require_active()?;
        let name = check_name(name, "cohort name")?;
        if self.role() != Role::Steward {
            return Err(Error::NotAllowed("only a steward creates cohorts"));
        }
        let taken = self
            .membership
            .cohorts()
            .any(|(id, _)| self.cohort_name(id).as_deref() == Some(name.as_str()));
        if taken {
            return Err(Error::Invalid("a cohort with this name exists already"));
        }
        let alliance_scope = self
            .membership
            .alliance_scope()
            .ok_or(Error::CorruptState("the alliance has no alliance scope"))?;
        let sealed_to = self
            .reader
            .newest_key(alliance_scope)
            .ok_or(Error::SyncFirst(
                "this device lacks the alliance key; sync first",
            ))?
            .identity
            .recipient()
            .to_string();
        let key = EpochKey::generate(ScopeId::random(rng), 0, rng);
        let mut draft = self.membership.clone();
        let entry = draft.append(
            &self.keys,
            Action::OpenCohort {
                scope: key.scope,
                recipient: key.identity.recipient().to_string(),
                sealed_name: seal_name(&name, &sealed_to)?,
                history,
            },
            now,
        )?;
        self.stage_change(draft, vec![entry], vec![key], now, rng)
    }

    /// Cancels an invite (or device link) no device has used yet: one this
    /// member made, or, for a steward or the cohort's facilitator, any into
    /// their reach. A device that has the link can no longer join with it.
    pub fn cancel_invite(
        &mut self,
        invite: InviteId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        self.require_active()?;
        if !self
            .membership
            .invite(&invite)
            .is_some_and(|i| i.is_open(now))
        {
            return Err(Error::NotFound(
                "no such invite, or it was already used, cancelled or expired; see kith invite list",
            ));
        }
        let mut draft = self.membership.clone();
        let entry = draft.append(&self.keys, Action::CancelInvite { invite }, now)?;
        self.stage_change(draft, vec![entry], Vec::new(), now, rng)
    }

    /// Removes a member and all their devices (also how a member leaves:
    /// `member` may be this device's own). Keys of the scopes they read
    /// change, where this device reads them too.
    pub fn remove_member(
        &mut self,
        member: MemberId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        let devices: Vec<DeviceId> = self
            .membership
            .devices()
            .filter(|(_, d)| d.active && d.member == member)
            .map(|(id, _)| *id)
            .collect();
        if devices.is_empty() {
            return Err(Error::NotFound("no such member, or they have already left"));
        }
        self.remove_devices(devices, true, now, rng)
    }

    /// Unlinks one device (a lost phone, say) from its member. Keys of the
    /// scopes it read change, where this device reads them too.
    pub fn unlink_device(
        &mut self,
        device: DeviceId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        if !self.membership.device(&device).is_some_and(|d| d.active) {
            return Err(Error::NotFound("no such device, or it is already unlinked"));
        }
        self.remove_devices(vec![device], false, now, rng)
    }

    fn remove_devices(
        &mut self,
        devices: Vec<DeviceId>,
        whole_member: bool,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        self.require_active()?;
        // Where each removed device's writing stops: what this device has
        // applied of it, in every scope this device reads.
        let me = self.device_id();
        let my_member = self.profile.member;
        let cutoffs = devices
            .iter()
            .flat_map(|device| {
                self.membership
                    .scopes_of(&my_member)
                    .into_iter()
                    .map(|scope| Cutoff {
                        device: *device,
                        scope,
                        seq: self.reader.chain_head(*device, scope).seq,
                    })
            })
            .collect();
        let mut draft = self.membership.clone();
        let removal = draft.append(
            &self.keys,
            Action::Remove {
                devices,
                whole_member,
                cutoffs,
            },
            now,
        )?;
        let mut entries = vec![removal];
        let mut keys = Vec::new();
        if draft.device(&me).is_some_and(|d| d.active) {
            let (more, new_keys) = self.rotations(&mut draft, now, rng)?;
            entries.extend(more);
            keys = new_keys;
        }
        self.stage_change(draft, entries, keys, now, rng)
    }

    /// Replaces the research team's keys (a steward's). Every scope's key
    /// changes: those this device reads at once, the others when one of
    /// their readers next syncs. Until then, members keep what they write
    /// in those scopes on their devices (`outbox.rs`).
    pub fn change_research_team(
        &mut self,
        recipients: Vec<String>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        self.require_active()?;
        let mut draft = self.membership.clone();
        let change = draft.append(&self.keys, Action::ResearchTeam { recipients }, now)?;
        let (rotations, keys) = self.rotations(&mut draft, now, rng)?;
        let mut entries = vec![change];
        entries.extend(rotations);
        self.stage_change(draft, entries, keys, now, rng)
    }

    /// Pins the key the app's releases must be signed with (a steward's),
    /// or with `None` stops checking updates. Every device learns it from
    /// the log.
    pub fn pin_release_key(
        &mut self,
        key: Option<ReleaseKey>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        self.require_active()?;
        let mut draft = self.membership.clone();
        let action = Action::PinReleaseKey {
            key: key.map(|k| k.0),
        };
        let entry = draft.append(&self.keys, action, now)?;
        self.stage_change(draft, vec![entry], Vec::new(), now, rng)
    }

    /// New keys for every stale scope this device reads, and the chapter
    /// its cohort owes if someone joined it: the entries and the keys
    /// (grants are made when the change is staged).
    fn rotations(
        &self,
        draft: &mut Membership,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Vec<SignedEntry>, Vec<EpochKey>), Error> {
        let mut entries = Vec::new();
        let mut keys = Vec::new();
        if let Some(cohort) = draft.chapter_owed_by(&self.device_id()) {
            let (entry, key) = new_chapter(draft, &self.keys, cohort, now, rng)?;
            entries.push(entry);
            keys.push(key);
        }
        for scope in draft.stale_scopes_read_by(&self.device_id()) {
            if draft.research_team_changed_since(&scope) {
                // Granted again with the new key, to the team as it is now.
                keys.extend(self.held_keys_of(scope));
            }
            let (entry, key) = self.rotate_entry(draft, scope, now, rng)?;
            entries.push(entry);
            keys.push(key);
        }
        Ok((entries, keys))
    }

    /// A new epoch key for `scope` and the `Rotate` entry that names it,
    /// appended to `draft`.
    fn rotate_entry(
        &self,
        draft: &mut Membership,
        scope: ScopeId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(SignedEntry, EpochKey), Error> {
        let epoch = draft.current_epoch(&scope).map_or(0, |e| e + 1);
        let key = EpochKey::generate(scope, epoch, rng);
        let entry = draft.append(
            &self.keys,
            Action::Rotate {
                scope,
                epoch,
                recipient: key.identity.recipient().to_string(),
            },
            now,
        )?;
        Ok((entry, key))
    }

    /// Every key of `scope` this device holds (to read it, or in custody).
    fn held_keys_of(&self, scope: ScopeId) -> Vec<EpochKey> {
        self.reader
            .epoch_keys()
            .iter()
            .chain(&self.custody)
            .filter(|k| k.scope == scope)
            .cloned()
            .collect()
    }

    /// If a reader left a scope this device reads and its key has not
    /// changed since, the change that rotates it (used by sync).
    pub(crate) fn rotation_duty(
        &mut self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Option<(HttpRequest, Vec<StoreOp>)>, Error> {
        if self.pending.is_some() || !self.is_active() {
            return Ok(None);
        }
        let mut draft = self.membership.clone();
        let (entries, keys) = self.rotations(&mut draft, now, rng)?;
        if entries.is_empty() {
            return Ok(None);
        }
        self.stage_change(draft, entries, keys, now, rng).map(Some)
    }

    /// For tests of what the relay refuses, and only with the
    /// `hostile-client` feature: a rotation of this device's cohort's key
    /// that no one owes (no one left), as a changed client could send it.
    #[cfg(feature = "hostile-client")]
    pub fn forge_rotation(
        &self,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<HttpRequest, Error> {
        let scope = self
            .cohort()
            .ok_or(Error::NoCohort("no cohort to rotate"))?;
        let mut draft = self.membership.clone();
        let (entry, _) = self.rotate_entry(&mut draft, scope, now, rng)?;
        let body = AppendLog {
            entries: vec![entry],
        };
        let path = api::paths::log(self.profile.alliance);
        Ok(self.sign_request("POST", path, json(&body), now, rng))
    }

    /// Saves a change as pending (keys and grants included) and returns the
    /// request that sends its entries.
    fn stage_change(
        &mut self,
        draft: Membership,
        entries: Vec<SignedEntry>,
        keys: Vec<EpochKey>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(HttpRequest, Vec<StoreOp>), Error> {
        if self.pending.is_some() {
            // Replacing it could lose keys the log already names.
            return Err(Error::SyncFirst(
                "an earlier membership change is still waiting for the relay; sync first",
            ));
        }
        let grants = keys
            .iter()
            .map(|key| self.grant_blob(&draft, key, now, rng))
            .collect::<Result<Vec<_>, _>>()?;
        // The grants live inside the saved pending change until the relay
        // takes it, so a refused change leaves nothing behind.
        let body = AppendLog {
            entries: entries.clone(),
        };
        self.pending = Some(PendingChange {
            entries,
            keys,
            grants,
        });
        let ops = vec![StoreOp::PutState(self.saved().encode())];
        let request = self.sign_request(
            "POST",
            api::paths::log(self.profile.alliance),
            json(&body),
            now,
            rng,
        );
        Ok((request, ops))
    }

    /// The relay took the pending change: apply it, keep its keys, queue
    /// its grants.
    pub fn change_accepted(&mut self) -> Result<Vec<StoreOp>, Error> {
        let pending = self
            .pending
            .take()
            .ok_or(Error::OutOfOrder("no membership change is waiting"))?;
        self.apply_log(&pending.entries)?;
        let mut ops = self.keep_change(pending);
        ops.push(StoreOp::PutState(self.saved().encode()));
        Ok(ops)
    }

    /// The relay refused the pending change: forget it.
    pub fn change_refused(&mut self) -> Vec<StoreOp> {
        self.pending = None;
        vec![StoreOp::PutState(self.saved().encode())]
    }

    /// After fetching the log: a pending change whose entries are in it was
    /// accepted (its answer was lost); one whose place is taken by other
    /// entries was not.
    pub(crate) fn settle_pending(&mut self) -> Vec<StoreOp> {
        let Some(pending) = self.pending.take() else {
            return Vec::new();
        };
        let Some(Ok(entry)) = pending.entries.first().map(|e| e.open()) else {
            return Vec::new();
        };
        match self.membership.entries().get(entry.index as usize) {
            Some(known) if Some(known) == pending.entries.first() => self.keep_change(pending),
            Some(_) => Vec::new(),
            None => {
                self.pending = Some(pending);
                Vec::new()
            }
        }
    }

    /// Keeps an accepted change's keys and queues its grants; returns the
    /// grants to store.
    fn keep_change(&mut self, pending: PendingChange) -> Vec<StoreOp> {
        for key in pending.keys {
            // A key of a scope this member does not read (a cohort a
            // steward opened for others) is kept only to put in invites.
            if self
                .membership
                .member_reads(&self.profile.member, &key.scope)
            {
                self.reader.add_key(key, &self.membership);
            } else {
                self.custody.push(key);
            }
        }
        pending
            .grants
            .into_iter()
            .map(|blob| {
                self.reader.mark_applied(blob.id);
                self.outbox.push(blob.clone());
                StoreOp::PutBlob(blob)
            })
            .collect()
    }

    fn require_active(&self) -> Result<(), Error> {
        if self.is_active() {
            Ok(())
        } else {
            Err(Error::Removed)
        }
    }
}

/// A new chapter of `cohort` (`membership/history.rs`), appended to
/// `draft` by `keys`' device, and its first key.
pub(crate) fn new_chapter(
    draft: &mut Membership,
    keys: &DeviceKeys,
    cohort: ScopeId,
    now: Timestamp,
    rng: &mut impl CryptoRngCore,
) -> Result<(SignedEntry, EpochKey), Error> {
    let key = EpochKey::generate(ScopeId::random(rng), 0, rng);
    let entry = draft.append(
        keys,
        Action::NewChapter {
            cohort,
            scope: key.scope,
            recipient: key.identity.recipient().to_string(),
        },
        now,
    )?;
    Ok((entry, key))
}

pub(crate) fn device_public_keys(keys: &DeviceKeys) -> DeviceKeysPublic {
    DeviceKeysPublic {
        device: keys.device_id(),
        recipient: keys.recipient().to_string(),
    }
}
