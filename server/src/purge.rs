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
