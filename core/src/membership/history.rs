//! What a member who joins a cohort later reads of what came before.
//!
//! A cohort opened with [`History::Whole`] hands a newcomer every key it
//! ever had: they read everything written before they came. One opened with
//! [`History::FromJoin`] (what new cohorts get unless the steward chooses
//! otherwise) is read in chapters. Each chapter is a scope of its own, with
//! its own keys, documents, chains and checkpoints, read by the members who
//! were in the cohort, or invited to it, when it opened (and the research
//! team). An invite makes a new chapter owed: the next device of a member
//! of the cohort to sync opens it (the inviter's at once, if in the
//! cohort), or the newcomer's as it joins if no one has. Members write from
//! then on in the newest chapter they read. What was written in an older
//! chapter, edits and late sends included, stays sealed to keys the
//! newcomer never gets. So a newcomer reads what was written after they
//! were invited, by devices that had heard of the invite.

use serde::{Deserialize, Serialize};

use super::{InviteInfo, MemberInfo, Membership, ScopeInfo, ScopeKind};
use crate::ids::{DeviceId, MemberId, ScopeId};

/// What a member who joins a cohort later reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum History {
    /// Everything written in the cohort, before they came too (every
    /// cohort opened before this choice existed).
    #[default]
    Whole,
    /// Only what is written after they join.
    FromJoin,
}

/// Whether `member` reads (and writes) cohort scope `id`: a cohort, or a
/// chapter of one, by membership rather than by key.
pub(super) fn in_chapter(member: &MemberInfo, id: &ScopeId, scope: &ScopeInfo) -> bool {
    let cohort = scope.chapter_of.unwrap_or(*id);
    member.cohort == Some(cohort)
        && (scope.history == History::Whole || member.since < scope.opened_at)
}

/// Whether the device an invite brings will read cohort scope `id` (so
/// gets its keys, with the invite or granted to the invite later): a cohort
/// that keeps its whole history, or a chapter opened after the invite.
pub(super) fn invite_reads(invite: &InviteInfo, id: &ScopeId, scope: &ScopeInfo) -> bool {
    invite.cohort == Some(scope.chapter_of.unwrap_or(*id))
        && match scope.history {
            History::Whole => true,
            History::FromJoin => invite.made_at < scope.opened_at,
        }
}

impl Membership {
    /// The cohort a scope belongs to: itself for a cohort, its cohort for a
    /// chapter, none for any other scope.
    pub fn cohort_of(&self, scope: &ScopeId) -> Option<ScopeId> {
        let info = self.scopes.get(scope)?;
        (info.kind == ScopeKind::Cohort).then(|| info.chapter_of.unwrap_or(*scope))
    }

    /// What a member who joins `cohort` later reads.
    pub fn history_of(&self, cohort: &ScopeId) -> Option<History> {
        self.scopes.get(cohort).map(|s| s.history)
    }

    /// The scopes of `cohort` (the cohort and its chapters), oldest first.
    pub fn chapters_of(&self, cohort: &ScopeId) -> Vec<ScopeId> {
        let mut all: Vec<(u64, ScopeId)> = self
            .scopes
            .iter()
            .filter(|(id, s)| {
                s.kind == ScopeKind::Cohort && s.chapter_of.unwrap_or(**id) == *cohort
            })
            .map(|(id, s)| (s.opened_at, *id))
            .collect();
        all.sort();
        all.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether `cohort` owes a new chapter: its newcomers read only what
    /// comes after them, and a member in it, or someone invited to it,
    /// would read none of its chapters yet.
    pub fn chapter_owed(&self, cohort: &ScopeId) -> bool {
        if self.history_of(cohort) != Some(History::FromJoin) {
            return false;
        }
        let newest = self
            .chapters_of(cohort)
            .last()
            .map_or(0, |id| self.scopes[id].opened_at);
        let member_waits = self
            .members
            .values()
            .any(|m| !m.removed && m.cohort == Some(*cohort) && m.since > newest);
        let invite_waits = self.invites.values().any(|i| {
            i.cohort == Some(*cohort)
                && i.used_by.is_none()
                && !i.cancelled
                && i.made_at > newest
                && !self.members.contains_key(&i.member)
        });
        member_waits || invite_waits
    }

    /// The cohort whose new chapter `device` should open, if one is owed
    /// and its member is in that cohort.
    pub fn chapter_owed_by(&self, device: &DeviceId) -> Option<ScopeId> {
        let info = self.devices.get(device).filter(|d| d.active)?;
        let cohort = self.members.get(&info.member)?.cohort?;
        self.chapter_owed(&cohort).then_some(cohort)
    }

    /// The scopes of their cohort `member` reads, newest first: their
    /// cohort, or the chapters of it opened after they were invited. A
    /// device writes new cohort writing in the first it holds a key of.
    pub fn cohort_scopes_read_by(&self, member: &MemberId) -> Vec<ScopeId> {
        let Some(cohort) = self.members.get(member).and_then(|m| m.cohort) else {
            return Vec::new();
        };
        let mut scopes = self.chapters_of(&cohort);
        scopes.retain(|scope| self.member_reads(member, scope));
        scopes.reverse();
        scopes
    }

    /// Every cohort scope `member` writes to: their cohort, or the chapters
    /// of it that opened after they joined (for editing what is there).
    pub fn cohort_scopes_written_by(&self, member: &MemberId) -> Vec<ScopeId> {
        let Some(cohort) = self.members.get(member).and_then(|m| m.cohort) else {
            return Vec::new();
        };
        self.chapters_of(&cohort)
            .into_iter()
            .filter(|scope| self.member_writes(member, scope))
            .collect()
    }
}
