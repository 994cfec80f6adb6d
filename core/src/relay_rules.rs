//! The relay's decisions, written once. The real relay
//! (`server/src/routes.rs`) and the simulation's relay
//! (`core/tests/sim/relay.rs`) both call these functions, so what the
//! simulation checks thousands of times is what the relay does; each driver
//! keeps only its storage (and the simulation its faults).
//!
//! Every function here is pure: it reads what the caller looked up (an
//! invite, a device's access, the replayed membership) and answers with a
//! decision or a [`Refusal`] that says what was wrong and what to do.

use std::borrow::Cow;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::{self, AppendBlobs, BlobRecord, PublishInvite, RegisterAlliance};
use crate::ids::{AllianceId, DeviceId, InviteId, ScopeId};
use crate::membership::{Action, Cutoff, LogError, Membership, SignedEntry};
use crate::role::Role;
use crate::time::Timestamp;

/// The longest an invite may stay valid.
pub const MAX_INVITE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// The largest invite package, in bytes.
pub const MAX_PACKAGE_BYTES: usize = 64 * 1024;

/// Why the relay says no: an HTTP status, a short code, and a sentence.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The device is known but may not do this (403).
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such thing (404).
    #[error("{0}")]
    NotFound(&'static str),
    /// Taken, used or out of date (409).
    #[error("{0}")]
    Conflict(&'static str),
    /// The invite has expired (410).
    #[error("this invite has expired; ask for a new one")]
    Expired,
    /// The invite was cancelled (410): its maker cancelled it, or was removed.
    #[error("this invite was cancelled; ask for a new one")]
    Cancelled,
    /// Something in the request is larger than the relay allows (413).
    #[error("the request is too large (at most {0} bytes); send fewer or smaller blobs")]
    TooLarge(usize),
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(Cow<'static, str>),
}

impl Refusal {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Forbidden(_) => 403,
            Refusal::NotFound(_) => 404,
            Refusal::Conflict(_) => 409,
            Refusal::Expired | Refusal::Cancelled => 410,
            Refusal::TooLarge(_) => 413,
            Refusal::BadRequest(_) => 400,
        }
    }

    /// The short machine-readable code in the answer's body.
    pub fn code(&self) -> &'static str {
        match self {
            Refusal::Forbidden(_) => "forbidden",
            Refusal::NotFound(_) => "not_found",
            Refusal::Conflict(_) => "conflict",
            Refusal::Expired => "expired",
            Refusal::Cancelled => "cancelled",
            Refusal::TooLarge(_) => "too_large",
            Refusal::BadRequest(_) => "bad_request",
        }
    }

    fn bad(message: &'static str) -> Self {
        Refusal::BadRequest(Cow::Borrowed(message))
    }
}

/// A device the alliance removed.
pub const REMOVED: Refusal =
    Refusal::Forbidden("this device was removed from the alliance; ask a steward for a new invite");
/// A device the alliance never knew.
pub const NOT_A_MEMBER: Refusal =
    Refusal::Forbidden("this device is not a member of this alliance; join with an invite first");
/// The log moved on since the device last read it.
pub const MEMBERSHIP_MOVED: Refusal =
    Refusal::Conflict("the membership changed meanwhile; sync, then try again");
/// A removal whose cutoff is behind writing the relay already holds.
pub const CUTOFF_BEHIND: Refusal = Refusal::Conflict(
    "the device being removed sent writing this device has not seen yet; sync, then try again",
);
/// An id the relay already holds with other bytes.
pub const BLOB_ID_TAKEN: Refusal =
    Refusal::Conflict("a different blob with the same id is already stored");
/// A checkpoint past what the relay holds.
pub const COVERS_AHEAD: Refusal = Refusal::BadRequest(Cow::Borrowed(
    "a checkpoint cannot cover blobs the relay does not have yet; sync, then write it again",
));
/// An invite id already in use.
pub const INVITE_ID_TAKEN: Refusal = Refusal::Conflict("an invite with this id already exists");
/// An invite someone else redeemed.
pub const INVITE_USED: Refusal =
    Refusal::Conflict("this invite was already used; ask for a new one");
/// An invite the relay does not know, or a wrong token (the same answer, so
/// a guess learns nothing).
pub const UNKNOWN_INVITE: Refusal =
    Refusal::NotFound("this invite is not known here; check the link, or ask for a new one");
/// An alliance id that does not parse or is not held.
pub const UNKNOWN_ALLIANCE: Refusal =
    Refusal::NotFound("no such alliance; check the link or the alliance id");

/// Whether a device may use an alliance's routes: `active` is whether the
/// relay knows the device, and if so whether it is active.
pub fn member_access(active: Option<bool>) -> Result<(), Refusal> {
    match active {
        Some(true) => Ok(()),
        Some(false) => Err(REMOVED),
        None => Err(NOT_A_MEMBER),
    }
}

/// For a removed device's log fetch: the index of the entry that removed
/// it. The relay serves it the log up to there, so it can check its removal
/// against the signed log before it deletes what it holds (a bare refusal,
/// which any relay can send, must not make a device wipe itself).
pub fn removal_entry(membership: &Membership, device: DeviceId) -> Option<u64> {
    membership
        .entries()
        .iter()
        .position(|signed| {
            signed.open().is_ok_and(|entry| match entry.action {
                Action::Remove { devices, .. } => devices.contains(&device),
                _ => false,
            })
        })
        .map(|at| at as u64)
}

/// A membership error as the relay's answer: a stale index is a conflict,
/// a forbidden change is forbidden, the rest is a bad request.
pub fn log_refusal(error: LogError) -> Refusal {
    match error {
        LogError::OutOfOrder { .. } => MEMBERSHIP_MOVED,
        LogError::Unauthorised(why) => Refusal::Forbidden(why),
        other => Refusal::BadRequest(Cow::Owned(other.to_string())),
    }
}

/// A new alliance's log, replayed; it must start with an entry the sender signed.
pub fn new_alliance(sender: DeviceId, body: &RegisterAlliance) -> Result<Membership, Refusal> {
    let membership = Membership::replay(body.alliance_id, &body.log).map_err(log_refusal)?;
    let created_by = body
        .log
        .first()
        .and_then(|e| e.open().ok())
        .map(|e| e.author);
    if membership.is_empty() || created_by != Some(sender) {
        return Err(Refusal::bad(
            "a new alliance's log must start with an entry its steward's device signed",
        ));
    }
    Ok(membership)
}

/// A registration without a token, on a relay that asks for one.
pub const REGISTRATION_TOKEN_NEEDED: Refusal = Refusal::Forbidden(
    "this relay creates alliances only with a registration token from its operator: \
     ask them for one (`kith-server registration-token`), then give it to kith init with --registration-token",
);
/// A registration token that is unknown or already spent on another alliance.
pub const REGISTRATION_TOKEN_REFUSED: Refusal = Refusal::Forbidden(
    "this registration token is not known here or was already used; ask the relay's operator for a new one",
);

/// The registration token to spend on a new alliance (its SHA-256), or
/// `None` on a relay whose operator opened registration to anyone.
pub fn registration_token(open: bool, token: Option<&str>) -> Result<Option<[u8; 32]>, Refusal> {
    if open {
        return Ok(None);
    }
    let token = token.ok_or(REGISTRATION_TOKEN_NEEDED)?;
    let mut raw = [0u8; 32];
    hex::decode_to_slice(token.trim(), &mut raw).map_err(|_| REGISTRATION_TOKEN_REFUSED)?;
    Ok(Some(Sha256::digest(raw).into()))
}

/// A registration for an id already held: a retry of the same log is fine.
pub fn registered_again(same_log: bool) -> Result<(), Refusal> {
    if same_log {
        Ok(())
    } else {
        Err(Refusal::Conflict("an alliance with this id already exists"))
    }
}

/// An invite to keep, once its entry is appended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewInvite {
    /// The role it gives.
    pub role: Role,
    /// SHA-256 of its one-time token.
    pub token_sha256: [u8; 32],
}

/// Checks an invite a member publishes: its entry announces this invite,
/// it expires within 30 days, its package is small, its token hash is hex.
/// (The entry itself is then checked against the log by [`entries_to_append`].)
pub fn invite_to_publish(body: &PublishInvite, now: Timestamp) -> Result<NewInvite, Refusal> {
    let entry = body.entry.open().map_err(log_refusal)?;
    let Action::Invite { invite, role, .. } = entry.action else {
        return Err(Refusal::bad(
            "an invite must come with its membership entry",
        ));
    };
    if invite != body.invite_id {
        return Err(Refusal::bad("the membership entry is for another invite"));
    }
    if body.expires_at <= now || body.expires_at.millis() - now.millis() > MAX_INVITE_MS {
        return Err(Refusal::bad(
            "an invite must expire in the future and within 30 days",
        ));
    }
    if body.package.len() > MAX_PACKAGE_BYTES {
        return Err(Refusal::TooLarge(MAX_PACKAGE_BYTES));
    }
    let mut token_sha256 = [0u8; 32];
    hex::decode_to_slice(&body.token_sha256, &mut token_sha256)
        .map_err(|_| Refusal::bad("token_sha256 must be 64 hex digits"))?;
    Ok(NewInvite { role, token_sha256 })
}

/// What the relay holds of an invite, for deciding a redeem.
#[derive(Clone, Copy, Debug)]
pub struct HeldInvite {
    /// SHA-256 of its token.
    pub token_sha256: [u8; 32],
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The device that redeemed it, if one did.
    pub used_by: Option<DeviceId>,
    /// Whether the membership log cancelled it (before a device joined with it).
    pub cancelled: bool,
    /// Whether its package was deleted (its device joined, or it expired).
    pub package_gone: bool,
}

/// What to do with a redeem the relay accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Redemption {
    /// Mark the invite used by this device, then answer.
    Consume,
    /// The same device asking again (its first answer was lost, or the
    /// membership moved before its join): answer as before.
    Repeat,
}

/// Decides a redeem of `invite` with `token` (hex) by `device`.
/// `device_active` is the device's access in the invite's alliance, if the
/// relay knows it: a device that joined and was since removed may not redeem
/// again (the answer's log would show it everyone who joined after it left).
pub fn redeem(
    invite: &HeldInvite,
    token: &str,
    device: DeviceId,
    device_active: Option<bool>,
    now: Timestamp,
) -> Result<Redemption, Refusal> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(token, &mut raw).map_err(|_| UNKNOWN_INVITE)?;
    let hash: [u8; 32] = Sha256::digest(raw).into();
    if !bool::from(hash.ct_eq(&invite.token_sha256)) {
        return Err(UNKNOWN_INVITE);
    }
    if invite.cancelled {
        return Err(Refusal::Cancelled);
    }
    match invite.used_by {
        // Asked again (its answer was lost): answered again, with the log
        // and, until the relay deleted it, the package.
        Some(by) if by == device => match device_active {
            Some(false) => Err(REMOVED),
            _ => Ok(Redemption::Repeat),
        },
        Some(_) => Err(INVITE_USED),
        None if invite.expires_at <= now || invite.package_gone => Err(Refusal::Expired),
        None => Ok(Redemption::Consume),
    }
}

/// The invites a log append cancelled (by their maker, or by their maker's
/// removal): the relay deletes their packages, which hold every epoch key.
pub fn cancelled_invites(before: &Membership, after: &Membership) -> Vec<InviteId> {
    after
        .invites()
        .filter(|(id, info)| info.cancelled && !before.invite(id).is_some_and(|b| b.cancelled))
        .map(|(id, _)| *id)
        .collect()
}

/// The invites `device` joined with: once it syncs as a member, it has
/// kept their keys, and the relay deletes their packages.
pub fn invites_used_by(membership: &Membership, device: DeviceId) -> Vec<InviteId> {
    membership
        .invites()
        .filter(|(_, info)| info.used_by == Some(device))
        .map(|(id, _)| *id)
        .collect()
}

/// The invite a device that is not (yet) a member names when it appends
/// its own join; `None` when the entries do not start with a join.
pub fn joining_with(entries: &[SignedEntry]) -> Option<InviteId> {
    let entry = entries.first()?.open().ok()?;
    match entry.action {
        Action::Join { invite, .. } => Some(invite),
        _ => None,
    }
}

/// A device that is not a member may append only its own join, with an
/// invite it redeemed for this alliance. `redeemed` is the invite's
/// alliance and redeemer, if the relay holds it.
pub fn join_allowed(
    alliance: AllianceId,
    device: DeviceId,
    redeemed: Option<(AllianceId, Option<DeviceId>)>,
) -> Result<(), Refusal> {
    match redeemed {
        Some((a, Some(by))) if a == alliance && by == device => Ok(()),
        _ => Err(Refusal::Forbidden(
            "redeem the invite before joining with it",
        )),
    }
}

/// Membership entries checked against the log, ready to store.
#[derive(Clone, Debug)]
pub struct CheckedEntries {
    /// The membership with the entries applied.
    pub membership: Membership,
    /// The cutoffs of any removals among them: the relay must hold no batch
    /// past them (else [`CUTOFF_BEHIND`]).
    pub cutoffs: Vec<Cutoff>,
}

/// A key rotation no one owes: the scope's key is one no one who left
/// holds. Refused, so a member cannot make every reader fetch and store new
/// keys over and over; rotations are bounded by removals, which only
/// stewards and facilitators make.
pub const ROTATION_NOT_OWED: Refusal = Refusal::Conflict(
    "this space's key does not need replacing: no one has left it since it was last replaced",
);

/// Checks entries from `signer` against `membership` (the stored log,
/// replayed), all or none: each must be signed by the sending device and
/// follow the log's rules, and a key rotation must be owed.
pub fn entries_to_append(
    mut membership: Membership,
    signer: DeviceId,
    entries: &[SignedEntry],
) -> Result<CheckedEntries, Refusal> {
    if entries.is_empty() || entries.len() > api::MAX_ENTRIES_PER_APPEND {
        return Err(Refusal::BadRequest(Cow::Owned(format!(
            "send between 1 and {} membership entries at a time",
            api::MAX_ENTRIES_PER_APPEND
        ))));
    }
    let mut cutoffs = Vec::new();
    for signed in entries {
        let entry = signed.open().map_err(log_refusal)?;
        if entry.author != signer {
            return Err(Refusal::Forbidden(
                "a device may only send membership entries it signed itself",
            ));
        }
        if let Action::Rotate { scope, .. } = &entry.action
            && !membership.scope(scope).is_some_and(|s| s.stale)
        {
            return Err(ROTATION_NOT_OWED);
        }
        membership.apply(signed).map_err(log_refusal)?;
        if let Action::Remove { cutoffs: more, .. } = entry.action {
            cutoffs.extend(more);
        }
    }
    Ok(CheckedEntries {
        membership,
        cutoffs,
    })
}

/// Whether a removal's cutoff is behind writing the relay holds: `held` is
/// the highest batch number it holds from the cutoff's device in its scope.
pub fn cutoff_behind(cutoff: &Cutoff, held: Option<u64>) -> bool {
    held.is_some_and(|h| h > cutoff.seq)
}

/// Whether `sent` (from device `by`) is the blob already stored under its
/// id (from device `stored_by`), so appending it again is a harmless retry.
/// The same bytes are; so is the same device sending its own batch or
/// checkpoint again sealed to a newer key of the scope (same document,
/// scope and place; see `outbox.rs`): the first copy is kept. Anything
/// else is a conflict.
pub fn is_same_blob(
    (stored_by, stored): (DeviceId, &BlobRecord),
    (by, sent): (DeviceId, &BlobRecord),
) -> bool {
    let sealed_to_scope = sent.seq.is_some() || sent.covers.is_some();
    stored.doc == sent.doc
        && (stored.data == sent.data
            || (sealed_to_scope
                && stored_by == by
                && stored.scope == sent.scope
                && stored.seq == sent.seq
                && stored.covers == sent.covers))
}

/// Checks the shape of an append: how many blobs, how large.
pub fn blobs_to_append(body: &AppendBlobs) -> Result<(), Refusal> {
    if body.blobs.is_empty() || body.blobs.len() > api::MAX_BLOBS_PER_APPEND {
        return Err(Refusal::BadRequest(Cow::Owned(format!(
            "send between 1 and {} blobs at a time",
            api::MAX_BLOBS_PER_APPEND
        ))));
    }
    if body
        .blobs
        .iter()
        .any(|b| b.data.len() > api::MAX_BLOB_BYTES)
    {
        return Err(Refusal::TooLarge(api::MAX_BLOB_BYTES));
    }
    // Every blob a Kith device writes is an age file. Anything else would
    // look, to every reader, like damage done by the relay (and be fetched
    // again on every sync): refused here, to the device that sent it.
    if body.blobs.iter().any(|b| !b.data.starts_with(AGE_HEADER)) {
        return Err(NOT_AN_AGE_FILE);
    }
    Ok(())
}

/// How every age file begins.
pub const AGE_HEADER: &[u8] = b"age-encryption.org/v1\n";
/// A blob that is not an age file.
pub const NOT_AN_AGE_FILE: Refusal = Refusal::BadRequest(Cow::Borrowed(
    "a blob must be an age-encrypted file, as Kith writes it; update or repair this client",
));

/// Whether an append holds checkpoints (then [`checkpoint_writers`] needs
/// the membership).
pub fn has_checkpoints(blobs: &[BlobRecord]) -> bool {
    blobs.iter().any(|b| b.covers.is_some())
}

/// Only a device that may summarise a scope writes its checkpoints: the
/// relay picks checkpoints for new devices and deletes what they supersede.
pub fn checkpoint_writers(
    membership: &Membership,
    signer: DeviceId,
    blobs: &[BlobRecord],
) -> Result<(), Refusal> {
    let allowed = blobs
        .iter()
        .filter(|b| b.covers.is_some())
        .all(|b| membership.may_checkpoint(&signer, &b.scope));
    if allowed {
        Ok(())
    } else {
        Err(Refusal::Forbidden(
            "only the scope's facilitator or steward (or, for research-only writing, its author) may write its checkpoint",
        ))
    }
}

/// A fetch that names no scopes, from a device that reads only some.
pub const NAME_YOUR_SCOPES: Refusal = Refusal::Forbidden(
    "this device may fetch only the spaces it reads; name them with scopes=SCOPE:POSITION,...",
);
/// A fetch naming a scope the device does not read.
pub const NOT_YOUR_SCOPE: Refusal = Refusal::Forbidden(
    "this device does not read one of the spaces asked for; sync the membership log and ask only for yours",
);

/// The scopes to serve `device` for a fetch that asked for `asked` (`None`:
/// every scope). A device is served only what the log says its member
/// reads; a researcher's device is served every scope, because the research
/// team's key opens what each scope grants it (and nothing else there).
/// Keys a steward or facilitator holds only to hand to invites do not widen
/// this: nothing on those devices reads with them.
pub fn scopes_to_serve(
    membership: &Membership,
    device: DeviceId,
    asked: Option<Vec<(ScopeId, u64)>>,
) -> Result<Option<Vec<(ScopeId, u64)>>, Refusal> {
    let member = membership
        .device(&device)
        .filter(|d| d.active)
        .map(|d| d.member)
        .ok_or(NOT_A_MEMBER)?;
    if membership.active_role(&device) == Some(Role::Researcher) {
        return Ok(asked);
    }
    let asked = asked.ok_or(NAME_YOUR_SCOPES)?;
    if asked
        .iter()
        .all(|(scope, _)| membership.member_reads(&member, scope))
    {
        Ok(Some(asked))
    } else {
        Err(NOT_YOUR_SCOPE)
    }
}

/// How many blobs a fetch page holds at most, for the `limit` asked.
pub fn page_limit(asked: Option<usize>) -> usize {
    asked
        .unwrap_or(api::MAX_BLOBS_PER_FETCH)
        .clamp(1, api::MAX_BLOBS_PER_FETCH)
}

/// A `SCOPE:POSITION,...` list from a query.
pub fn scope_list(text: &str) -> Result<Vec<(ScopeId, u64)>, Refusal> {
    api::paths::parse_scope_list(text).ok_or(Refusal::bad(
        "scopes must be SCOPE:POSITION pairs separated by commas (at most 256)",
    ))
}

/// An alliance id from a path.
pub fn alliance_id(raw: &str) -> Result<AllianceId, Refusal> {
    raw.parse().map_err(|_| UNKNOWN_ALLIANCE)
}

/// An invite id from a path.
pub fn invite_id(raw: &str) -> Result<InviteId, Refusal> {
    raw.parse().map_err(|_| UNKNOWN_INVITE)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(n: u8) -> DeviceId {
        DeviceId([n; 32])
    }

    fn held(token: [u8; 32], used_by: Option<DeviceId>) -> HeldInvite {
        HeldInvite {
            token_sha256: Sha256::digest(token).into(),
            expires_at: Timestamp(1_000),
            used_by,
            cancelled: false,
            package_gone: false,
        }
    }

    #[test]
    fn a_wrong_token_looks_like_an_unknown_invite() {
        let invite = held([7; 32], None);
        for token in [hex::encode([8u8; 32]), "zz".into(), String::new()] {
            assert_eq!(
                redeem(&invite, &token, device(1), None, Timestamp(0)),
                Err(UNKNOWN_INVITE)
            );
        }
    }

    #[test]
    fn redeem_once_then_only_the_same_device_again() {
        let token = hex::encode([7u8; 32]);
        let fresh = held([7; 32], None);
        assert_eq!(
            redeem(&fresh, &token, device(1), None, Timestamp(0)),
            Ok(Redemption::Consume)
        );
        assert_eq!(
            redeem(&fresh, &token, device(1), None, Timestamp(1_000)),
            Err(Refusal::Expired)
        );
        let used = held([7; 32], Some(device(1)));
        assert_eq!(
            redeem(&used, &token, device(1), Some(true), Timestamp(5_000)),
            Ok(Redemption::Repeat),
            "a lost answer is asked again, even after expiry"
        );
        assert_eq!(
            redeem(&used, &token, device(1), Some(false), Timestamp(0)),
            Err(REMOVED)
        );
        assert_eq!(
            redeem(&used, &token, device(2), None, Timestamp(0)),
            Err(INVITE_USED)
        );
        let gone = HeldInvite {
            package_gone: true,
            ..fresh
        };
        assert_eq!(
            redeem(&gone, &token, device(1), None, Timestamp(0)),
            Err(Refusal::Expired),
            "an unused invite whose keys are gone is as good as expired"
        );
        let cancelled = HeldInvite {
            cancelled: true,
            ..fresh
        };
        assert_eq!(
            redeem(&cancelled, &token, device(1), None, Timestamp(0)),
            Err(Refusal::Cancelled)
        );
    }

    #[test]
    fn a_join_needs_the_invite_redeemed_by_the_same_device_for_this_alliance() {
        let here = AllianceId([1; 16]);
        let there = AllianceId([2; 16]);
        assert!(join_allowed(here, device(1), Some((here, Some(device(1))))).is_ok());
        for redeemed in [
            None,
            Some((here, None)),
            Some((here, Some(device(2)))),
            Some((there, Some(device(1)))),
        ] {
            assert!(join_allowed(here, device(1), redeemed).is_err());
        }
    }

    #[test]
    fn refusals_carry_distinct_status_and_code() {
        for (refusal, status, code) in [
            (REMOVED, 403, "forbidden"),
            (UNKNOWN_INVITE, 404, "not_found"),
            (MEMBERSHIP_MOVED, 409, "conflict"),
            (Refusal::Expired, 410, "expired"),
            (Refusal::TooLarge(3), 413, "too_large"),
            (COVERS_AHEAD, 400, "bad_request"),
        ] {
            assert_eq!((refusal.status(), refusal.code()), (status, code));
            assert!(refusal.to_string().contains(' '), "a sentence: {refusal}");
        }
    }

    #[test]
    fn cutoffs_refuse_only_batches_past_them() {
        let cutoff = Cutoff {
            device: device(1),
            scope: ScopeId([3; 16]),
            seq: 4,
        };
        assert!(!cutoff_behind(&cutoff, None));
        assert!(!cutoff_behind(&cutoff, Some(4)));
        assert!(cutoff_behind(&cutoff, Some(5)));
    }

    #[test]
    fn page_limits_stay_in_bounds() {
        assert_eq!(page_limit(None), api::MAX_BLOBS_PER_FETCH);
        assert_eq!(page_limit(Some(0)), 1);
        assert_eq!(page_limit(Some(usize::MAX)), api::MAX_BLOBS_PER_FETCH);
    }
}
