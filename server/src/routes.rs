//! The HTTP API handlers. Each one checks who is asking, then stores or
//! serves opaque bytes.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kith_core::api::{
    self, AppendBlobs, Appended as AppendedBody, BlobPage, PublishInvite, RedeemInvite, Redeemed,
    RegisterAlliance, Role,
};
use kith_core::{AllianceId, DeviceId, InviteId};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Signed;
use crate::error::AppError;
use crate::storage::{Appended, Storage, StoredInvite};
use crate::{AppState, now};

/// The longest an invite may stay valid.
const MAX_INVITE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// The largest invite package.
const MAX_PACKAGE_BYTES: usize = 64 * 1024;

fn alliance_id(raw: &str) -> Result<AllianceId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound("no such alliance; check the link or the alliance id"))
}

async fn require_member<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
    device: DeviceId,
) -> Result<Role, AppError> {
    state
        .storage
        .device_role(alliance, device)
        .await?
        .ok_or(AppError::Forbidden(
            "this device is not a member of this alliance; join with an invite first",
        ))
}

/// `POST /v1/alliances`
pub async fn register_alliance<S: Storage>(
    State(state): State<AppState<S>>,
    signed: Signed,
) -> Result<StatusCode, AppError> {
    let body: RegisterAlliance = signed.json()?;
    if state
        .storage
        .create_alliance(body.alliance_id, signed.device, now())
        .await?
    {
        tracing::info!(alliance = %body.alliance_id, "alliance registered");
        return Ok(StatusCode::CREATED);
    }
    // A retried registration by the same steward is fine.
    match state
        .storage
        .device_role(body.alliance_id, signed.device)
        .await?
    {
        Some(Role::Steward) => Ok(StatusCode::OK),
        _ => Err(AppError::Conflict(
            "an alliance with this id already exists",
        )),
    }
}

/// `POST /v1/alliances/{alliance}/invites`
pub async fn publish_invite<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    signed: Signed,
) -> Result<StatusCode, AppError> {
    let alliance = alliance_id(&alliance)?;
    let role = require_member(&state, alliance, signed.device).await?;
    if !role.may_invite() {
        return Err(AppError::Forbidden(
            "only a steward or facilitator can invite people",
        ));
    }
    let body: PublishInvite = signed.json()?;
    if body.role == Role::Steward {
        return Err(AppError::BadRequest(
            "an invite cannot make a steward".into(),
        ));
    }
    let now = now();
    if body.expires_at <= now || body.expires_at.millis() - now.millis() > MAX_INVITE_MS {
        return Err(AppError::BadRequest(
            "an invite must expire in the future and within 30 days".into(),
        ));
    }
    if body.package.len() > MAX_PACKAGE_BYTES {
        return Err(AppError::TooLarge(MAX_PACKAGE_BYTES));
    }
    let mut token_sha256 = [0u8; 32];
    hex::decode_to_slice(&body.token_sha256, &mut token_sha256)
        .map_err(|_| AppError::BadRequest("token_sha256 must be 64 hex digits".into()))?;
    let invite = StoredInvite {
        alliance,
        token_sha256,
        role: body.role,
        package: body.package,
        expires_at: body.expires_at,
        used_by: None,
    };
    if !state.storage.put_invite(body.invite_id, invite).await? {
        return Err(AppError::Conflict("an invite with this id already exists"));
    }
    Ok(StatusCode::CREATED)
}

/// `POST /v1/invites/{invite}/redeem`, signed by the joining device's new key.
pub async fn redeem_invite<S: Storage>(
    State(state): State<AppState<S>>,
    Path(invite): Path<String>,
    signed: Signed,
) -> Result<Json<Redeemed>, AppError> {
    const UNKNOWN: AppError =
        AppError::NotFound("this invite is not known here; check the link, or ask for a new one");
    let id: InviteId = invite.parse().map_err(|_| UNKNOWN)?;
    let body: RedeemInvite = signed.json()?;
    let stored = state.storage.invite(id).await?.ok_or(UNKNOWN)?;
    let mut token = [0u8; 32];
    hex::decode_to_slice(&body.token, &mut token).map_err(|_| UNKNOWN)?;
    let token_hash: [u8; 32] = Sha256::digest(token).into();
    if !bool::from(token_hash.ct_eq(&stored.token_sha256)) {
        return Err(UNKNOWN);
    }
    let answer = Json(Redeemed {
        alliance_id: stored.alliance,
        package: stored.package.clone(),
    });
    match stored.used_by {
        // The same device asking again (its first answer was lost) gets the same answer.
        Some(device) if device == signed.device => return Ok(answer),
        Some(_) => {
            return Err(AppError::Conflict(
                "this invite was already used; ask for a new one",
            ));
        }
        None => {}
    }
    if stored.expires_at <= now() {
        return Err(AppError::Gone);
    }
    if !state
        .storage
        .consume_invite(id, signed.device, now())
        .await?
    {
        return Err(AppError::Conflict(
            "this invite was already used; ask for a new one",
        ));
    }
    tracing::info!(alliance = %stored.alliance, role = stored.role.as_str(), "device joined");
    Ok(answer)
}

/// `POST /v1/alliances/{alliance}/blobs`
pub async fn append_blobs<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    signed: Signed,
) -> Result<Json<AppendedBody>, AppError> {
    let alliance = alliance_id(&alliance)?;
    require_member(&state, alliance, signed.device).await?;
    let body: AppendBlobs = signed.json()?;
    if body.blobs.is_empty() || body.blobs.len() > api::MAX_BLOBS_PER_APPEND {
        return Err(AppError::BadRequest(format!(
            "send between 1 and {} blobs at a time",
            api::MAX_BLOBS_PER_APPEND
        )));
    }
    if body
        .blobs
        .iter()
        .any(|b| b.data.len() > api::MAX_BLOB_BYTES)
    {
        return Err(AppError::TooLarge(api::MAX_BLOB_BYTES));
    }
    let outcomes = state
        .storage
        .append(alliance, signed.device, &body.blobs)
        .await?;
    if outcomes.contains(&Appended::Conflict) {
        return Err(AppError::Conflict(
            "a different blob with the same id is already stored",
        ));
    }
    tracing::debug!(alliance = %alliance, count = body.blobs.len(), "blobs appended");
    Ok(Json(AppendedBody {
        stored: body.blobs.iter().map(|b| b.id).collect(),
    }))
}

/// Query of `GET /v1/alliances/{alliance}/blobs`.
#[derive(Deserialize)]
pub struct After {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

/// `GET /v1/alliances/{alliance}/blobs?after=N&limit=M`
pub async fn fetch_blobs<S: Storage>(
    State(state): State<AppState<S>>,
    Path(alliance): Path<String>,
    Query(query): Query<After>,
    signed: Signed,
) -> Result<Json<BlobPage>, AppError> {
    let alliance = alliance_id(&alliance)?;
    require_member(&state, alliance, signed.device).await?;
    let limit = query
        .limit
        .unwrap_or(api::MAX_BLOBS_PER_FETCH)
        .clamp(1, api::MAX_BLOBS_PER_FETCH);
    let page = state.storage.fetch(alliance, query.after, limit).await?;
    Ok(Json(BlobPage {
        blobs: page.blobs,
        next: page.next,
        more: page.more,
    }))
}

/// `GET /healthz`
pub async fn healthz() -> &'static str {
    "ok"
}
