//! The signed membership log: who is in the alliance, with which devices and
//! roles, which cohorts exist, and the public key of every epoch of every
//! readable scope.
//!
//! Each entry is signed by the device that wrote it and names the hash of
//! the entry before it, so the log is one chain. Every device replays the
//! whole log with [`Membership::apply`] and refuses an entry its author was
//! not allowed to write; the relay replays it too, to authorise requests.
//! Entries hold opaque ids, roles and public keys only: names (cohort names,
//! pseudonyms) travel sealed to the alliance scope, which the relay cannot
//! open.
//!
//! Because the log names each epoch's public recipient, a key grant needs no
//! trusted signer: a grant is genuine exactly when its secret matches the
//! recipient the log names for that scope and epoch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::encoding::base64_bytes;
use crate::ids::{AllianceId, DeviceId, InviteId, MemberId, ScopeId};
use crate::keys::{DeviceKeys, verify};
pub use crate::log_error::LogError;
use crate::release::ReleaseKey;
use crate::role::Role;
use crate::time::Timestamp;
pub use history::History;

mod history;

/// Domain separation for entry signatures.
pub const LOG_LABEL: &[u8] = b"kith/membership/v1\n";
/// Domain separation for the invite key's signature in a join.
pub const JOIN_PROOF_LABEL: &[u8] = b"kith/join-proof/v1\n";

/// An entry as stored and sent: its postcard body and the author's signature.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEntry {
    /// `postcard(Entry)`.
    #[serde(with = "base64_bytes")]
    pub body: Vec<u8>,
    /// Ed25519 by `Entry::author` over `LOG_LABEL || body`.
    #[serde(with = "base64_bytes")]
    pub signature: Vec<u8>,
}

impl SignedEntry {
    /// SHA-256 of the body: what the next entry's `prev` names.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(&self.body).into()
    }

    /// Decodes the body and checks the signature.
    pub fn open(&self) -> Result<Entry, LogError> {
        let entry: Entry = postcard::from_bytes(&self.body).map_err(|_| LogError::Malformed)?;
        let message = [LOG_LABEL, &self.body].concat();
        if !verify(&entry.author, &message, &self.signature) {
            return Err(LogError::BadSignature);
        }
        Ok(entry)
    }
}

/// One change to the membership.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Entry {
    /// The alliance.
    pub alliance: AllianceId,
    /// Its position, from 0.
    pub index: u64,
    /// Hash of the entry before (zeros for the first).
    pub prev: [u8; 32],
    /// The device that signed it.
    pub author: DeviceId,
    /// The author's clock (informational).
    pub at: Timestamp,
    /// What it changes.
    pub action: Action,
}

/// A device's public keys.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeysPublic {
    /// Its Ed25519 key, which is its id.
    pub device: DeviceId,
    /// The age recipient epoch keys are wrapped to.
    pub recipient: String,
}

/// Who reads a scope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeKind {
    /// Every device in the alliance (sealed names live here).
    Alliance,
    /// The devices of one cohort's members.
    Cohort,
    /// One member's own devices (with the research team): "research team only".
    Research(MemberId),
}

/// The newest batch of a removed device that the remover had seen in a
/// scope; anything numbered after it is refused.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cutoff {
    /// The removed device.
    pub device: DeviceId,
    /// The scope.
    pub scope: ScopeId,
    /// Its last accepted sequence number there.
    pub seq: u64,
}

/// What an entry does.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Action {
    /// Entry 0: the alliance, its steward (member and device), the steward's
    /// cohort, and the research team's age recipients.
    Create {
        /// The steward as a member.
        steward: MemberId,
        /// The steward's device.
        device: DeviceKeysPublic,
        /// The steward's cohort (opened by a later entry).
        cohort: ScopeId,
        /// The research team's age recipients (`age1...`).
        research: Vec<String>,
        /// The steward's pseudonym, sealed to the alliance scope.
        #[serde(with = "base64_bytes")]
        sealed_pseudonym: Vec<u8>,
    },
    /// Opens a scope at epoch 0.
    OpenScope {
        /// Its id.
        scope: ScopeId,
        /// Who reads it.
        kind: ScopeKind,
        /// Epoch 0's public recipient.
        recipient: String,
        /// For cohorts, the name, sealed to the alliance scope; else empty.
        #[serde(with = "base64_bytes")]
        sealed_name: Vec<u8>,
    },
    /// A new epoch for a scope, after a reader left.
    Rotate {
        /// The scope.
        scope: ScopeId,
        /// The new epoch (one more than the last).
        epoch: u32,
        /// Its public recipient.
        recipient: String,
    },
    /// An invite: a new member, or a new device for an existing member.
    Invite {
        /// Its id.
        invite: InviteId,
        /// The invite's Ed25519 key; the joining device proves it has the link with it.
        key: [u8; 32],
        /// The member the new device belongs to (new, or the author's own).
        member: MemberId,
        /// That member's role.
        role: Role,
        /// That member's cohort (none for researchers).
        cohort: Option<ScopeId>,
        /// The recipient of the invite's age identity, so that keys rotated
        /// before the invite is used still reach it.
        recipient: String,
        /// When it stops working.
        expires_at: Timestamp,
    },
    /// An invited device arrives. Signed by the new device.
    Join {
        /// The invite used.
        invite: InviteId,
        /// The new device's keys.
        device: DeviceKeysPublic,
        /// The invite key's signature over the join (see [`join_proof_message`]).
        #[serde(with = "base64_bytes")]
        proof: Vec<u8>,
        /// The member's pseudonym, sealed to the alliance scope (empty for an added device).
        #[serde(with = "base64_bytes")]
        sealed_pseudonym: Vec<u8>,
    },
    /// Removes devices: one device (unlinking) or every device of a member.
    Remove {
        /// The devices.
        devices: Vec<DeviceId>,
        /// Whether the member leaves the alliance.
        whole_member: bool,
        /// Where each removed device's writes stop.
        cutoffs: Vec<Cutoff>,
    },
    /// Cancels an invite no device has used yet.
    CancelInvite {
        /// The invite.
        invite: InviteId,
    },
    /// Replaces the research team's age recipients (a steward's). Every
    /// scope's key is then stale, so a key taken off the team opens nothing
    /// written once readers have replaced them.
    ResearchTeam {
        /// The team's recipients (`age1...`) from now on.
        recipients: Vec<String>,
    },
    /// Opens a cohort at epoch 0, saying whether a member who joins later
    /// reads what was written before they came (`history.rs`). A cohort
    /// opened with [`Action::OpenScope`] keeps its whole history.
    OpenCohort {
        /// Its id.
        scope: ScopeId,
        /// Epoch 0's public recipient.
        recipient: String,
        /// Its name, sealed to the alliance scope.
        #[serde(with = "base64_bytes")]
        sealed_name: Vec<u8>,
        /// What a member who joins later reads.
        history: History,
    },
    /// A new chapter of a cohort whose members read only what was written
    /// after they joined: a scope of its own, read by the cohort's members
    /// as they are now. Owed once someone joins the cohort.
    NewChapter {
        /// The cohort.
        cohort: ScopeId,
        /// The chapter's scope id.
        scope: ScopeId,
        /// Its epoch 0's public recipient.
        recipient: String,
    },
    /// Pins the key that signs the app's releases (a steward's), or, with
    /// none, stops checking them. Devices offer only app updates signed
    /// with it (`release.rs`).
    PinReleaseKey {
        /// The release key's public half.
        key: Option<[u8; 32]>,
    },
}

/// A member as the log knows them.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    /// Their role.
    pub role: Role,
    /// Their cohort (none for researchers).
    pub cohort: Option<ScopeId>,
    /// Whether they left or were removed.
    pub removed: bool,
    /// Their pseudonym, sealed to the alliance scope.
    pub sealed_pseudonym: Vec<u8>,
    /// Their research-only scope, once opened.
    pub research_scope: Option<ScopeId>,
    /// How many members joined before them (the steward is 0).
    pub joined: usize,
    /// The index of the log entry that invited them (0 for the first
    /// steward): they read the chapters of a cohort read from join on
    /// opened after it.
    pub since: u64,
}

/// A device as the log knows it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Whose device it is.
    pub member: MemberId,
    /// Its age recipient.
    pub recipient: String,
    /// Whether it is still in the alliance.
    pub active: bool,
    /// For a removed device: its last accepted batch in each scope.
    pub cutoffs: BTreeMap<ScopeId, u64>,
}

/// A scope as the log knows it.
#[derive(Clone, Debug)]
pub struct ScopeInfo {
    /// Who reads it.
    pub kind: ScopeKind,
    /// Each epoch's public recipient, from epoch 0.
    pub epochs: Vec<String>,
    /// For a cohort, its name sealed to the alliance scope.
    pub sealed_name: Vec<u8>,
    /// Someone who is not a reader knows its current key (a reader left,
    /// or a steward outside the cohort opened it): a reader should replace it.
    pub stale: bool,
    /// How many times the research team had changed when its current
    /// epoch began (see [`Membership::research_team_changed_since`]).
    pub research_team_at: u32,
    /// For a cohort or chapter: what a member who joins later reads.
    pub history: History,
    /// For a chapter: the cohort it belongs to.
    pub chapter_of: Option<ScopeId>,
    /// The index of the log entry that opened it.
    pub opened_at: u64,
}

/// An invite as the log knows it.
#[derive(Clone, Debug)]
pub struct InviteInfo {
    /// The invite's Ed25519 key.
    pub key: [u8; 32],
    /// The member it adds a device to.
    pub member: MemberId,
    /// Their role.
    pub role: Role,
    /// Their cohort.
    pub cohort: Option<ScopeId>,
    /// The invite identity's recipient.
    pub recipient: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The device that made it.
    pub made_by: DeviceId,
    /// The index of its `Invite` entry.
    pub made_at: u64,
    /// The device that used it.
    pub used_by: Option<DeviceId>,
    /// Whether it was cancelled before use: by its maker, a steward or the
    /// cohort's facilitator, or because its maker's device was removed.
    pub cancelled: bool,
}

impl InviteInfo {
    /// Whether a device may still join with it at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        self.used_by.is_none() && !self.cancelled && self.expires_at > now
    }
}

/// The membership, as replayed from the log.
#[derive(Clone, Debug)]
pub struct Membership {
    alliance: AllianceId,
    entries: Vec<SignedEntry>,
    head: [u8; 32],
    research: Vec<String>,
    /// How many times the research team changed.
    research_changes: u32,
    members: BTreeMap<MemberId, MemberInfo>,
    devices: BTreeMap<DeviceId, DeviceInfo>,
    scopes: BTreeMap<ScopeId, ScopeInfo>,
    invites: BTreeMap<InviteId, InviteInfo>,
    alliance_scope: Option<ScopeId>,
    release_key: Option<ReleaseKey>,
}

/// What the invite key signs when a device joins.
pub fn join_proof_message(
    alliance: AllianceId,
    invite: InviteId,
    device: &DeviceKeysPublic,
) -> Vec<u8> {
    let mut message = JOIN_PROOF_LABEL.to_vec();
    message.extend_from_slice(&alliance.0);
    message.extend_from_slice(&invite.0);
    message.extend_from_slice(&device.device.0);
    message.extend_from_slice(device.recipient.as_bytes());
    message
}

mod rules;
#[cfg(test)]
mod tests;

impl Membership {
    /// An empty log for `alliance`; its first entry must be a `Create`.
    pub fn new(alliance: AllianceId) -> Self {
        Self {
            alliance,
            entries: Vec::new(),
            head: [0; 32],
            research: Vec::new(),
            research_changes: 0,
            members: BTreeMap::new(),
            devices: BTreeMap::new(),
            scopes: BTreeMap::new(),
            invites: BTreeMap::new(),
            alliance_scope: None,
            release_key: None,
        }
    }

    /// Replays a whole log.
    pub fn replay(alliance: AllianceId, entries: &[SignedEntry]) -> Result<Self, LogError> {
        let mut membership = Self::new(alliance);
        for entry in entries {
            membership.apply(entry)?;
        }
        Ok(membership)
    }

    /// Checks one entry against everything before it and, if it is allowed,
    /// applies it. A refused entry changes nothing.
    pub fn apply(&mut self, signed: &SignedEntry) -> Result<(), LogError> {
        let entry = signed.open()?;
        if entry.alliance != self.alliance {
            return Err(LogError::WrongAlliance);
        }
        let expected = self.entries.len() as u64;
        if entry.index != expected || entry.prev != self.head {
            return Err(LogError::OutOfOrder {
                expected,
                got: entry.index,
            });
        }
        // Work on a copy (without the entries, which the checks never read),
        // so a refused entry leaves everything as it was.
        let entries = std::mem::take(&mut self.entries);
        let mut next = self.clone();
        self.entries = entries;
        next.act(&entry)?;
        next.entries = std::mem::take(&mut self.entries);
        next.entries.push(signed.clone());
        next.head = signed.hash();
        *self = next;
        Ok(())
    }

    /// Signs `action` as the next entry and applies it. Returns the entry
    /// to send to the relay.
    pub fn append(
        &mut self,
        keys: &DeviceKeys,
        action: Action,
        now: Timestamp,
    ) -> Result<SignedEntry, LogError> {
        let entry = Entry {
            alliance: self.alliance,
            index: self.entries.len() as u64,
            prev: self.head,
            author: keys.device_id(),
            at: now,
            action,
        };
        let body = postcard::to_allocvec(&entry).map_err(|_| LogError::Malformed)?;
        let signature = keys.sign(&[LOG_LABEL, &body].concat()).to_vec();
        let signed = SignedEntry { body, signature };
        self.apply(&signed)?;
        Ok(signed)
    }

    // Reading the membership.

    /// The alliance.
    /// The hash of the first entry: what invite links pin.
    pub fn root(&self) -> Option<[u8; 32]> {
        self.entries.first().map(SignedEntry::hash)
    }

    /// The alliance.
    pub fn alliance(&self) -> AllianceId {
        self.alliance
    }

    /// Every entry, in order.
    pub fn entries(&self) -> &[SignedEntry] {
        &self.entries
    }

    /// How many entries there are.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether the log is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The research team's age recipients.
    pub fn research_recipients(&self) -> &[String] {
        &self.research
    }

    /// The key the alliance's app releases must be signed with, if a
    /// steward pinned one.
    pub fn release_key(&self) -> Option<ReleaseKey> {
        self.release_key
    }

    /// Whether the research team changed since `scope`'s current epoch
    /// began: its next key's rotation hands the team the older keys too, so
    /// a key added to the team reads the scope's history (and each writer's
    /// chain from its start).
    pub fn research_team_changed_since(&self, scope: &ScopeId) -> bool {
        self.scopes
            .get(scope)
            .is_some_and(|s| s.research_team_at != self.research_changes)
    }

    /// A device, active or removed.
    pub fn device(&self, device: &DeviceId) -> Option<&DeviceInfo> {
        self.devices.get(device)
    }

    /// Every device, active or removed.
    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &DeviceInfo)> {
        self.devices.iter()
    }

    /// A member.
    pub fn member(&self, member: &MemberId) -> Option<&MemberInfo> {
        self.members.get(member)
    }

    /// Every member, present or gone.
    pub fn members(&self) -> impl Iterator<Item = (&MemberId, &MemberInfo)> {
        self.members.iter()
    }

    /// Every member, present or gone, in the order they joined.
    pub fn members_in_join_order(&self) -> Vec<(MemberId, &MemberInfo)> {
        let mut all: Vec<(MemberId, &MemberInfo)> =
            self.members.iter().map(|(id, info)| (*id, info)).collect();
        all.sort_by_key(|(_, info)| info.joined);
        all
    }

    /// The role of an active device's member.
    pub fn active_role(&self, device: &DeviceId) -> Option<Role> {
        let info = self.devices.get(device).filter(|d| d.active)?;
        Some(self.members[&info.member].role)
    }

    /// A scope.
    pub fn scope(&self, scope: &ScopeId) -> Option<&ScopeInfo> {
        self.scopes.get(scope)
    }

    /// The alliance-wide scope, once opened.
    pub fn alliance_scope(&self) -> Option<ScopeId> {
        self.alliance_scope
    }

    /// Every cohort.
    pub fn cohorts(&self) -> impl Iterator<Item = (&ScopeId, &ScopeInfo)> {
        self.scopes
            .iter()
            .filter(|(_, s)| s.kind == ScopeKind::Cohort && s.chapter_of.is_none())
    }

    /// The public recipient of a scope's epoch.
    pub fn epoch_recipient(&self, scope: &ScopeId, epoch: u32) -> Option<&str> {
        self.scopes
            .get(scope)?
            .epochs
            .get(epoch as usize)
            .map(String::as_str)
    }

    /// The newest epoch of a scope.
    pub fn current_epoch(&self, scope: &ScopeId) -> Option<u32> {
        let epochs = self.scopes.get(scope)?.epochs.len();
        u32::try_from(epochs).ok()?.checked_sub(1)
    }

    /// An invite.
    pub fn invite(&self, invite: &InviteId) -> Option<&InviteInfo> {
        self.invites.get(invite)
    }

    /// Every invite the log names, used or not.
    pub fn invites(&self) -> impl Iterator<Item = (&InviteId, &InviteInfo)> {
        self.invites.iter()
    }

    /// Whether `member` reads `scope` (by membership, not by key).
    pub fn member_reads(&self, member: &MemberId, scope: &ScopeId) -> bool {
        let (Some(info), Some(s)) = (self.members.get(member), self.scopes.get(scope)) else {
            return false;
        };
        !info.removed
            && match s.kind {
                ScopeKind::Alliance => true,
                ScopeKind::Cohort => history::in_chapter(info, scope, s),
                ScopeKind::Research(owner) => owner == *member,
            }
    }

    /// Whether `member` may write to `scope`: the scope is theirs, whether
    /// or not they have since left (what they wrote before stays valid).
    pub fn member_writes(&self, member: &MemberId, scope: &ScopeId) -> bool {
        let (Some(info), Some(s)) = (self.members.get(member), self.scopes.get(scope)) else {
            return false;
        };
        match s.kind {
            ScopeKind::Alliance => false,
            ScopeKind::Cohort => history::in_chapter(info, scope, s),
            ScopeKind::Research(owner) => owner == *member,
        }
    }

    /// Whether `device` may write a checkpoint of `scope`: an active device
    /// of the cohort's facilitator or steward, or of the member whose
    /// research-only scope it is. (Whoever writes one could put history in
    /// it that no one wrote; see the threat model.)
    pub fn may_checkpoint(&self, device: &DeviceId, scope: &ScopeId) -> bool {
        let Some(info) = self.devices.get(device).filter(|d| d.active) else {
            return false;
        };
        let (Some(member), Some(s)) = (self.members.get(&info.member), self.scopes.get(scope))
        else {
            return false;
        };
        match s.kind {
            ScopeKind::Alliance => false,
            ScopeKind::Cohort => {
                member.role.may_invite() && !member.removed && history::in_chapter(member, scope, s)
            }
            ScopeKind::Research(owner) => owner == info.member,
        }
    }

    /// The active devices that read `scope`, with their recipients.
    pub fn readers(&self, scope: ScopeId) -> Vec<(DeviceId, &str)> {
        self.devices
            .iter()
            .filter(|(_, d)| d.active && self.member_reads(&d.member, &scope))
            .map(|(id, d)| (*id, d.recipient.as_str()))
            .collect()
    }

    /// Recipients of unused, unexpired invites whose device will read `scope`.
    pub fn pending_invite_recipients(&self, scope: ScopeId, now: Timestamp) -> Vec<&str> {
        let Some(kind) = self.scopes.get(&scope).map(|s| s.kind) else {
            return Vec::new();
        };
        self.invites
            .values()
            .filter(|i| i.is_open(now))
            .filter(|i| match kind {
                ScopeKind::Alliance => true,
                // A cohort whose newcomers read only what comes after them
                // gives an invite none of its keys.
                ScopeKind::Cohort => history::invite_reads(i, &scope, &self.scopes[&scope]),
                ScopeKind::Research(owner) => owner == i.member,
            })
            .map(|i| i.recipient.as_str())
            .collect()
    }

    /// Scopes whose key should change because a reader left, that `device` reads.
    pub fn stale_scopes_read_by(&self, device: &DeviceId) -> Vec<ScopeId> {
        let Some(info) = self.devices.get(device).filter(|d| d.active) else {
            return Vec::new();
        };
        self.scopes_of(&info.member)
            .into_iter()
            .filter(|s| self.scopes[s].stale)
            .collect()
    }

    /// The scopes the device an invite brings will read.
    pub fn scopes_for_invite(&self, invite: &InviteId) -> Vec<ScopeId> {
        let Some(invite) = self.invites.get(invite) else {
            return Vec::new();
        };
        if self.members.contains_key(&invite.member) {
            return self.scopes_of(&invite.member);
        }
        let cohort = invite.cohort.filter(|c| {
            self.scopes
                .get(c)
                .is_some_and(|s| history::invite_reads(invite, c, s))
        });
        self.alliance_scope.into_iter().chain(cohort).collect()
    }

    /// The member's own research-only scopes, whether or not they have left.
    pub fn research_scopes_of(&self, member: &MemberId) -> Vec<ScopeId> {
        self.scopes
            .iter()
            .filter(|(_, s)| s.kind == ScopeKind::Research(*member))
            .map(|(id, _)| *id)
            .collect()
    }

    /// The scopes a member reads.
    pub fn scopes_of(&self, member: &MemberId) -> Vec<ScopeId> {
        self.scopes
            .keys()
            .filter(|s| self.member_reads(member, s))
            .copied()
            .collect()
    }
}
