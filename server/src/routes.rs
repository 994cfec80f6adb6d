//! The HTTP API handlers. Each one checks who is asking, then stores or
//! serves opaque bytes. What to allow is decided by `kith_core::relay_rules`
//! (the simulation's relay calls the same functions); this module looks up
//! what those decisions need and stores what they allow.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kith_core::api::{
    AppendBlobs, AppendLog, Appended as AppendedBody, BlobPage, CheckpointList, LogPage,
    PublishInvite, RedeemInvite, Redeemed, RegisterAlliance, Role,
};
use kith_core::relay_rules::{self as rules, Redemption};
use kith_core::{AllianceId, DeviceId, Membership, SignedEntry};
use serde::Deserialize;
use std::sync::Arc;

use crate::auth::{REPLAYED, Signed, SignedUnspent};
use crate::error::AppError;
use crate::storage::{Append, Appended, DeviceAccess, LogAppend, Storage, StoredInvite};
use crate::{AppState, now};

pub(crate) fn alliance_id(raw: &str) -> Result<AllianceId, AppError> {
    Ok(rules::alliance_id(raw)?)
}

pub(crate) async fn require_member<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
    device: DeviceId,
) -> Result<Role, AppError> {
    let access = state.storage.device_access(alliance, device).await?;
    rules::member_access(access.as_ref().map(|a| a.active))?;
    access
        .map(|a| a.role)
        .ok_or(AppError::from(rules::NOT_A_MEMBER))
}

/// The alliance's membership as stored now.
pub(crate) async fn membership<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
) -> Result<Arc<Membership>, AppError> {
    state.memberships.current(&*state.storage, alliance).await
}

/// Checks entries from `signer` against the stored log and appends them.
async fn append_entries<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
    signer: DeviceId,
    membership: Arc<Membership>,
    entries: &[SignedEntry],
) -> Result<(), AppError> {
    let from = membership.len();
    let checked = rules::entries_to_append(Membership::clone(&membership), signer, entries)?;
    let devices = DeviceAccess::all(&checked.membership);
    match state
        .storage
        .append_log(alliance, from, entries, &devices, &checked.cutoffs, now())
        .await?
    {
        LogAppend::Appended => {}
        LogAppend::Conflict => return Err(rules::MEMBERSHIP_MOVED.into()),
        LogAppend::CutoffBehind => return Err(rules::CUTOFF_BEHIND.into()),
    }
    tracing::info!(alliance = %alliance, count = entries.len(), "membership entries appended");
    let cancelled = rules::cancelled_invites(&membership, &checked.membership);
    crate::invite_keys::drop(state, alliance, cancelled);
    Ok(())
}

/// `POST /v1/alliances`
pub async fn register_alliance<S: Storage>(
    State(state): State<AppState<S>>,
    signed: Signed,
) -> Result<StatusCode, AppError> {
    let body: RegisterAlliance = signed.json()?;
    let membership = rules::new_alliance(signed.device, &body)?;
    let token = rules::registration_token(
        state.limits.open_registration,
        body.registration_token.as_deref(),
    )?;
    if let Some(token) = token
        && !state
            .storage
            .use_registration_token(token, body.alliance_id)
            .await?
    {
        return Err(rules::REGISTRATION_TOKEN_REFUSED.into());
    }
    let devices = DeviceAccess::all(&membership);
    if state
        .storage
        .create_alliance(body.alliance_id, &body.log, &devices, now())
        .await?
    {
        tracing::info!(alliance = %body.alliance_id, "alliance registered");
        return Ok(StatusCode::CREATED);
    }
    // A retried registration of the same log is fine.
    let same = state.storage.log(body.alliance_id, 0).await? == body.log;
    rules::registered_again(same)?;
    Ok(StatusCode::OK)
}

/// `POST /v1/alliances/{alliance}/invites`
pub async fn publish_invite<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    signed: Signed,
) -> Result<StatusCode, AppError> {
    let alliance = alliance_id(&alliance)?;
    require_member(&state, alliance, signed.device).await?;
    let body: PublishInvite = signed.json()?;
    let checked = rules::invite_to_publish(&body, now())?;
    if state.storage.invite(body.invite_id).await?.is_some() {
        return Err(rules::INVITE_ID_TAKEN.into());
    }
    let membership = membership(&state, alliance).await?;
    append_entries(&state, alliance, signed.device, membership, &[body.entry]).await?;
    let invite = StoredInvite {
        alliance,
        token_sha256: checked.token_sha256,
        role: checked.role,
        package: body.package,
        expires_at: body.expires_at,
        used_by: None,
    };
    if !state.storage.put_invite(body.invite_id, invite).await? {
        return Err(rules::INVITE_ID_TAKEN.into());
    }
    Ok(StatusCode::CREATED)
}

/// `POST /v1/invites/{invite}/redeem`, signed by the joining device's new key.
pub async fn redeem_invite<S: Storage>(
    State(state): State<AppState<S>>,
    Path(invite): Path<String>,
    signed: Signed,
) -> Result<Json<Redeemed>, AppError> {
    let id = rules::invite_id(&invite)?;
    let body: RedeemInvite = signed.json()?;
    let stored = state
        .storage
        .invite(id)
        .await?
        .ok_or(rules::UNKNOWN_INVITE)?;
    let access = state
        .storage
        .device_access(stored.alliance, signed.device)
        .await?;
    // The log says whether the invite was cancelled (by its maker, or by
    // its maker's removal).
    let cancelled = membership(&state, stored.alliance)
        .await?
        .invite(&id)
        .is_some_and(|i| i.cancelled);
    let held = rules::HeldInvite {
        token_sha256: stored.token_sha256,
        expires_at: stored.expires_at,
        used_by: stored.used_by,
        cancelled,
        package_gone: stored.package.is_empty(),
    };
    let now = now();
    match rules::redeem(
        &held,
        &body.token,
        signed.device,
        access.map(|a| a.active),
        now,
    )? {
        Redemption::Repeat => {}
        Redemption::Consume => {
            if !state.storage.consume_invite(id, signed.device, now).await? {
                return Err(rules::INVITE_USED.into());
            }
        }
    }
    tracing::info!(alliance = %stored.alliance, role = stored.role.as_str(), "invite redeemed");
    Ok(Json(Redeemed {
        alliance_id: stored.alliance,
        package: stored.package,
        log: state.storage.log(stored.alliance, 0).await?,
    }))
}

/// `POST /v1/alliances/{alliance}/log`: membership entries. From a member's
/// active device; or, for its own join, from the device that redeemed the
/// invite the join names.
pub async fn append_log<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    signed: Signed,
) -> Result<StatusCode, AppError> {
    let alliance = alliance_id(&alliance)?;
    let body: AppendLog = signed.json()?;
    if let Err(refusal) = require_member(&state, alliance, signed.device).await {
        let Some(invite) = rules::joining_with(&body.entries) else {
            return Err(refusal);
        };
        let redeemed = state.storage.invite(invite).await?;
        rules::join_allowed(
            alliance,
            signed.device,
            redeemed.map(|i| (i.alliance, i.used_by)),
        )?;
    }
    let membership = membership(&state, alliance).await?;
    append_entries(&state, alliance, signed.device, membership, &body.entries).await?;
    Ok(StatusCode::CREATED)
}

/// Query of `GET /v1/alliances/{alliance}/log`.
#[derive(Deserialize)]
pub struct From {
    #[serde(default)]
    from: u64,
}

/// `GET /v1/alliances/{alliance}/log?from=N`
pub async fn fetch_log<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    Query(query): Query<From>,
    signed: Signed,
) -> Result<Json<LogPage>, AppError> {
    let alliance = alliance_id(&alliance)?;
    if let Err(refused) = require_member(&state, alliance, signed.device).await {
        // A removed device is shown the log up to its removal, and no
        // further, so it can check it before it deletes what it holds.
        let membership = membership(&state, alliance).await?;
        let Some(removed_at) = rules::removal_entry(&membership, signed.device) else {
            return Err(refused);
        };
        let upto = usize::try_from(removed_at + 1).unwrap_or(usize::MAX);
        let from = usize::try_from(query.from).unwrap_or(usize::MAX).min(upto);
        let entries = membership.entries()[from..upto].to_vec();
        return Ok(Json(LogPage {
            entries,
            more: false,
        }));
    }
    crate::invite_keys::after_first_sync(&state, alliance, signed.device).await?;
    let mut entries = state.storage.log(alliance, query.from).await?;
    let more = entries.len() > kith_core::api::MAX_ENTRIES_PER_FETCH;
    entries.truncate(kith_core::api::MAX_ENTRIES_PER_FETCH);
    Ok(Json(LogPage { entries, more }))
}

/// `POST /v1/alliances/{alliance}/blobs`. The request's nonce is recorded
/// in the append's own commit.
pub async fn append_blobs<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    request: SignedUnspent,
) -> Result<Json<AppendedBody>, AppError> {
    let (alliance, body) = match check_append(&state, &alliance, &request.signed).await {
        Ok(checked) => checked,
        Err(refused) => {
            // Spent all the same: a refused request is not tried again later.
            request.spend(&state).await?;
            return Err(refused);
        }
    };
    let device = request.signed.device;
    let outcomes = match state
        .storage
        .append(
            alliance,
            device,
            &body.blobs,
            state.limits.alliance_quota_bytes,
            Some(request.nonce),
        )
        .await?
    {
        Append::Done(outcomes) => outcomes,
        Append::Replayed => return Err(REPLAYED),
        Append::NotActive => return Err(rules::REMOVED.into()),
        Append::CoversAhead => return Err(rules::COVERS_AHEAD.into()),
        Append::OverQuota { used } => {
            tracing::warn!(alliance = %alliance, used, "alliance storage quota reached");
            return Err(AppError::OverQuota(state.limits.alliance_quota_bytes));
        }
    };
    if outcomes.contains(&Appended::Conflict) {
        return Err(rules::BLOB_ID_TAKEN.into());
    }
    tracing::debug!(alliance = %alliance, count = body.blobs.len(), "blobs appended");
    crate::metrics::blobs_appended(&body.blobs);
    Ok(Json(AppendedBody {
        stored: body.blobs.iter().map(|b| b.id).collect(),
    }))
}

/// What an append is checked for before it reaches storage: a member's
/// device, a well-formed body, checkpoints only from those who may write them.
async fn check_append<S: Storage>(
    state: &AppState<S>,
    alliance: &str,
    signed: &Signed,
) -> Result<(AllianceId, AppendBlobs), AppError> {
    let alliance = alliance_id(alliance)?;
    require_member(state, alliance, signed.device).await?;
    let body: AppendBlobs = signed.json()?;
    rules::blobs_to_append(&body)?;
    if rules::has_checkpoints(&body.blobs) {
        let membership = membership(state, alliance).await?;
        rules::checkpoint_writers(&membership, signed.device, &body.blobs)?;
    }
    Ok((alliance, body))
}

/// Query of `GET /v1/alliances/{alliance}/blobs`.
#[derive(Deserialize)]
pub struct After {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
    scopes: Option<String>,
    /// Seconds to wait for something new when there is nothing (a long poll).
    #[serde(default)]
    wait: u64,
}

/// `GET /v1/alliances/{alliance}/blobs?after=N&limit=M[&scopes=S:P,...][&wait=S]`
pub async fn fetch_blobs<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    Query(query): Query<After>,
    signed: Signed,
) -> Result<Json<BlobPage>, AppError> {
    let alliance = alliance_id(&alliance)?;
    require_member(&state, alliance, signed.device).await?;
    let limit = rules::page_limit(query.limit);
    let asked = query.scopes.as_deref().map(rules::scope_list).transpose()?;
    let membership = membership(&state, alliance).await?;
    let scopes = rules::scopes_to_serve(&membership, signed.device, asked)?;
    // A long poll holds a connection like a stream does, and counts as one.
    let _slot = (query.wait > 0)
        .then(|| state.live.slot(signed.device))
        .transpose()?;
    // Listen before looking, so nothing arriving in between is missed.
    let changes = (query.wait > 0).then(|| state.storage.changes());
    let mut page = state
        .storage
        .fetch(alliance, query.after, limit, scopes.as_deref())
        .await?;
    if let Some(changes) = changes.filter(|_| page.blobs.is_empty()) {
        crate::live::wait_for_change(&state, changes, alliance, query.wait).await;
        page = state
            .storage
            .fetch(alliance, query.after, limit, scopes.as_deref())
            .await?;
    }
    Ok(Json(BlobPage {
        blobs: page.blobs,
        next: page.next,
        more: page.more,
    }))
}

/// Query of `GET /v1/alliances/{alliance}/checkpoints`.
#[derive(Deserialize)]
pub struct Scopes {
    #[serde(default)]
    scopes: String,
}

/// `GET /v1/alliances/{alliance}/checkpoints?scopes=S:P,...`
pub async fn fetch_checkpoints<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    Query(query): Query<Scopes>,
    signed: Signed,
) -> Result<Json<CheckpointList>, AppError> {
    let alliance = alliance_id(&alliance)?;
    require_member(&state, alliance, signed.device).await?;
    let asked = rules::scope_list(&query.scopes)?;
    let membership = membership(&state, alliance).await?;
    let scopes =
        rules::scopes_to_serve(&membership, signed.device, Some(asked))?.unwrap_or_default();
    let checkpoints = state.storage.checkpoints(alliance, &scopes).await?;
    Ok(Json(CheckpointList { checkpoints }))
}

/// `GET /healthz`
pub async fn healthz() -> &'static str {
    "ok"
}
