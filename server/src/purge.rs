//! Deleting what the relay holds: a withdrawn member's writing (a
//! steward's request), and batches a checkpoint has superseded (the
//! relay's own housekeeping). Deleted bytes are then scrubbed from the
//! database's files (`Storage::scrub`; how, per backend, in
//! docs/OPERATIONS.md).

use axum::Json;
use axum::extract::{Path, State};
use kith_core::api::{Role, Withdraw, Withdrawn};
use kith_core::relay_rules::Refusal;
use kith_core::{DeviceId, Timestamp};

use crate::auth::Signed;
use crate::error::AppError;
use crate::routes::{alliance_id, membership, require_member};
use crate::storage::{Purged, Storage};
use crate::{AppState, now};

/// `POST /v1/alliances/{alliance}/withdrawals`: a steward deletes
/// everything a removed member's devices wrote.
pub async fn withdraw<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    signed: Signed,
) -> Result<Json<Withdrawn>, AppError> {
    let alliance = alliance_id(&alliance)?;
    if require_member(&state, alliance, signed.device).await? != Role::Steward {
        return Err(Refusal::Forbidden(
            "only a steward can delete a member's writing; ask your steward",
        )
        .into());
    }
    let body: Withdraw = signed.json()?;
    let membership = membership(&state, alliance).await?;
    let devices: Vec<(DeviceId, bool)> = membership
        .devices()
        .filter(|(_, info)| info.member == body.member)
        .map(|(id, info)| (*id, info.active))
        .collect();
    if devices.is_empty() {
        return Err(
            Refusal::NotFound("no such member in this alliance; check the member's id").into(),
        );
    }
    if devices.iter().any(|(_, active)| *active) {
        return Err(Refusal::Conflict(
            "remove the member first, so nothing more arrives from them; then delete their writing",
        )
        .into());
    }
    let ids: Vec<DeviceId> = devices.into_iter().map(|(id, _)| id).collect();
    let private = membership.research_scopes_of(&body.member);
    let purged = state
        .storage
        .purge_written_by(alliance, &ids, &private)
        .await?;
    // Scrubbing can lock the table (PostgreSQL): only when something went.
    if purged.blobs > 0 {
        state.storage.scrub().await?;
    }
    tracing::info!(
        alliance = %alliance,
        blobs = purged.blobs,
        bytes = purged.bytes,
        "a withdrawn member's writing was deleted"
    );
    Ok(Json(Withdrawn {
        blobs: purged.blobs,
        bytes: purged.bytes,
    }))
}

/// Deletes batches superseded by checkpoints stored more than
/// `retention_secs` ago (devices offline longer fetch the checkpoint
/// instead), then scrubs. Returns what was deleted.
pub async fn superseded<S: Storage>(storage: &S, retention_secs: u64) -> Result<Purged, AppError> {
    let before = Timestamp(
        now()
            .millis()
            .saturating_sub(retention_secs.saturating_mul(1000)),
    );
    let purged = storage.purge_superseded(before).await?;
    if purged.blobs > 0 {
        storage.scrub().await?;
        tracing::info!(
            blobs = purged.blobs,
            bytes = purged.bytes,
            "batches superseded by checkpoints were deleted"
        );
    }
    Ok(purged)
}

/// How long after an invite expires its package stays: a device that
/// redeemed it just before expiry may still be joining.
pub const STALE_INVITE_GRACE_MS: u64 = 24 * 60 * 60 * 1000;

/// Deletes the packages of invites that expired more than a day before
/// `now`, used or not, and scrubs them from the database's files.
pub async fn stale_invite_packages<S: Storage>(storage: &S, now: Timestamp) {
    let before = Timestamp(now.millis().saturating_sub(STALE_INVITE_GRACE_MS));
    match storage.drop_stale_invite_packages(before).await {
        Ok(0) => {}
        Ok(dropped) => {
            tracing::info!(dropped, "deleted the packages of expired invites");
            if let Err(e) = storage.scrub_invites().await {
                tracing::warn!(error = %e, "cannot scrub deleted invite packages");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot delete expired invite packages"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SqliteStorage;
    use crate::storage::StoredInvite;
    use kith_core::{AllianceId, InviteId};

    fn invite(expires_at: u64, used_by: Option<DeviceId>) -> StoredInvite {
        StoredInvite {
            alliance: AllianceId([1; 16]),
            token_sha256: [2; 32],
            role: Role::Member,
            package: vec![3; 100],
            expires_at: Timestamp(expires_at),
            used_by,
        }
    }

    /// Expired a day ago, used or not: the package goes. Expired just now
    /// (a device may still be joining) or still open: it stays.
    #[tokio::test]
    async fn packages_of_invites_expired_a_day_ago_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path()).await.unwrap();
        let alliance = AllianceId([1; 16]);
        assert!(
            storage
                .create_alliance(alliance, &[], &[], Timestamp(0))
                .await
                .unwrap()
        );
        let now = Timestamp(10 * STALE_INVITE_GRACE_MS);
        let day_ago = now.millis() - STALE_INVITE_GRACE_MS - 1;
        let cases = [
            (InviteId([1; 16]), invite(day_ago, None), true),
            (
                InviteId([2; 16]),
                invite(day_ago, Some(DeviceId([9; 32]))),
                true,
            ),
            (InviteId([3; 16]), invite(now.millis() - 1, None), false),
            (InviteId([4; 16]), invite(now.millis() + 1, None), false),
        ];
        for (id, stored, _) in &cases {
            assert!(storage.put_invite(*id, stored.clone()).await.unwrap());
        }
        stale_invite_packages(&storage, now).await;
        for (id, _, deleted) in cases {
            let held = storage.invite(id).await.unwrap().unwrap();
            assert_eq!(held.package.is_empty(), deleted, "{id:?}");
        }
    }
}
