//! The HTTP API handlers. Each one checks who is asking, then stores or
//! serves opaque bytes.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kith_core::api::{
    self, AppendBlobs, AppendLog, Appended as AppendedBody, BlobPage, CheckpointList, LogPage,
    PublishInvite, RedeemInvite, Redeemed, RegisterAlliance, Role,
};
use kith_core::membership::Action;
use kith_core::{AllianceId, DeviceId, InviteId, LogError, Membership, SignedEntry};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::auth::Signed;
use crate::error::AppError;
use crate::storage::{Append, Appended, DeviceAccess, LogAppend, Storage, StoredInvite};
use crate::{AppState, now};

/// The longest an invite may stay valid.
const MAX_INVITE_MS: u64 = 30 * 24 * 60 * 60 * 1000;
/// The largest invite package.
const MAX_PACKAGE_BYTES: usize = 64 * 1024;

pub(crate) fn alliance_id(raw: &str) -> Result<AllianceId, AppError> {
    raw.parse()
        .map_err(|_| AppError::NotFound("no such alliance; check the link or the alliance id"))
}

pub(crate) async fn require_member<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
    device: DeviceId,
) -> Result<Role, AppError> {
    match state.storage.device_access(alliance, device).await? {
        Some(access) if access.active => Ok(access.role),
        Some(_) => Err(AppError::Forbidden(
            "this device was removed from the alliance; ask a steward for a new invite",
        )),
        None => Err(AppError::Forbidden(
            "this device is not a member of this alliance; join with an invite first",
        )),
    }
}

/// Why the relay refuses a membership entry, as an answer.
fn log_refusal(error: LogError) -> AppError {
    match error {
        LogError::OutOfOrder { .. } => {
            AppError::Conflict("the membership changed meanwhile; sync, then try again")
        }
        LogError::Unauthorised(why) => AppError::Forbidden(why),
        other => AppError::BadRequest(format!("{other}")),
    }
}

/// The alliance's membership, replayed from the stored log.
pub(crate) async fn membership<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
) -> Result<Membership, AppError> {
    let log = state.storage.log(alliance, 0).await?;
    Membership::replay(alliance, &log).map_err(|e| {
        tracing::error!(alliance = %alliance, error = %e, "stored membership log does not replay");
        AppError::Unavailable
    })
}

/// Checks entries from `signer` against the stored log and appends them.
async fn append_entries<S: Storage>(
    state: &AppState<S>,
    alliance: AllianceId,
    signer: DeviceId,
    mut membership: Membership,
    entries: &[SignedEntry],
) -> Result<(), AppError> {
    if entries.is_empty() || entries.len() > api::MAX_ENTRIES_PER_APPEND {
        return Err(AppError::BadRequest(format!(
            "send between 1 and {} membership entries at a time",
            api::MAX_ENTRIES_PER_APPEND
        )));
    }
    let from = membership.len();
    let mut cutoffs = Vec::new();
    for signed in entries {
        let entry = signed.open().map_err(log_refusal)?;
        if entry.author != signer {
            return Err(AppError::Forbidden(
                "a device may only send membership entries it signed itself",
            ));
        }
        membership.apply(signed).map_err(log_refusal)?;
        if let Action::Remove { cutoffs: more, .. } = entry.action {
            cutoffs.extend(more);
        }
    }
    let devices = DeviceAccess::all(&membership);
    match state
        .storage
        .append_log(alliance, from, entries, &devices, &cutoffs, now())
        .await?
    {
        LogAppend::Appended => {}
        LogAppend::Conflict => {
            return Err(AppError::Conflict(
                "the membership changed meanwhile; sync, then try again",
            ));
        }
        LogAppend::CutoffBehind => {
            return Err(AppError::Conflict(
                "the device being removed sent writing this device has not seen yet; sync, then try again",
            ));
        }
    }
    tracing::info!(alliance = %alliance, count = entries.len(), "membership entries appended");
    Ok(())
}

/// `POST /v1/alliances`
pub async fn register_alliance<S: Storage>(
    State(state): State<AppState<S>>,
    signed: Signed,
) -> Result<StatusCode, AppError> {
    let body: RegisterAlliance = signed.json()?;
    let membership = Membership::replay(body.alliance_id, &body.log).map_err(log_refusal)?;
    let created_by = body
        .log
        .first()
        .and_then(|e| e.open().ok())
        .map(|e| e.author);
    if membership.is_empty() || created_by != Some(signed.device) {
        return Err(AppError::BadRequest(
            "a new alliance's log must start with an entry its steward's device signed".into(),
        ));
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
    if state.storage.log(body.alliance_id, 0).await? == body.log {
        Ok(StatusCode::OK)
    } else {
        Err(AppError::Conflict(
            "an alliance with this id already exists",
        ))
    }
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
    let entry = body.entry.open().map_err(log_refusal)?;
    let Action::Invite { invite, role, .. } = entry.action else {
        return Err(AppError::BadRequest(
            "an invite must come with its membership entry".into(),
        ));
    };
    if invite != body.invite_id {
        return Err(AppError::BadRequest(
            "the membership entry is for another invite".into(),
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
    if state.storage.invite(body.invite_id).await?.is_some() {
        return Err(AppError::Conflict("an invite with this id already exists"));
    }
    let membership = membership(&state, alliance).await?;
    append_entries(&state, alliance, signed.device, membership, &[body.entry]).await?;
    let invite = StoredInvite {
        alliance,
        token_sha256,
        role,
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
    match stored.used_by {
        // The same device asking again (its first answer was lost, or the
        // membership moved before its join) gets the same answer; unless
        // it joined and was removed since: the log would show it everyone
        // who joined after it left.
        Some(device) if device == signed.device => {
            let access = state.storage.device_access(stored.alliance, device).await?;
            if access.is_some_and(|a| !a.active) {
                return Err(AppError::Forbidden(
                    "this device was removed from the alliance; ask a steward for a new invite",
                ));
            }
        }
        Some(_) => {
            return Err(AppError::Conflict(
                "this invite was already used; ask for a new one",
            ));
        }
        None => {
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
    if require_member(&state, alliance, signed.device)
        .await
        .is_err()
    {
        let joining = body.entries.first().and_then(|e| e.open().ok());
        let Some(Action::Join { invite, .. }) = joining.map(|e| e.action) else {
            return require_member(&state, alliance, signed.device)
                .await
                .map(|_| StatusCode::OK);
        };
        let redeemed = state.storage.invite(invite).await?;
        if !redeemed.is_some_and(|i| i.alliance == alliance && i.used_by == Some(signed.device)) {
            return Err(AppError::Forbidden(
                "redeem the invite before joining with it",
            ));
        }
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
    require_member(&state, alliance, signed.device).await?;
    let mut entries = state.storage.log(alliance, query.from).await?;
    let more = entries.len() > api::MAX_ENTRIES_PER_FETCH;
    entries.truncate(api::MAX_ENTRIES_PER_FETCH);
    Ok(Json(LogPage { entries, more }))
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
    // Only a device that may summarise a scope writes its checkpoints: the
    // relay picks checkpoints for new devices and deletes what they supersede.
    if body.blobs.iter().any(|b| b.covers.is_some()) {
        let membership = membership(&state, alliance).await?;
        let allowed = body
            .blobs
            .iter()
            .filter(|b| b.covers.is_some())
            .all(|b| membership.may_checkpoint(&signed.device, &b.scope));
        if !allowed {
            return Err(AppError::Forbidden(
                "only the scope's facilitator or steward (or, for research-only writing, its author) may write its checkpoint",
            ));
        }
    }
    let outcomes = match state
        .storage
        .append(
            alliance,
            signed.device,
            &body.blobs,
            state.limits.alliance_quota_bytes,
        )
        .await?
    {
        Append::Done(outcomes) => outcomes,
        Append::NotActive => {
            return Err(AppError::Forbidden(
                "this device was removed from the alliance; ask a steward for a new invite",
            ));
        }
        Append::CoversAhead => {
            return Err(AppError::BadRequest(
                "a checkpoint cannot cover blobs the relay does not have yet; sync, then write it again".into(),
            ));
        }
        Append::OverQuota { used } => {
            tracing::warn!(alliance = %alliance, used, "alliance storage quota reached");
            return Err(AppError::OverQuota(state.limits.alliance_quota_bytes));
        }
    };
    if outcomes.contains(&Appended::Conflict) {
        return Err(AppError::Conflict(
            "a different blob with the same id is already stored",
        ));
    }
    tracing::debug!(alliance = %alliance, count = body.blobs.len(), "blobs appended");
    crate::metrics::blobs_appended(&body.blobs);
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
    scopes: Option<String>,
    /// Seconds to wait for something new when there is nothing (a long poll).
    #[serde(default)]
    wait: u64,
}

fn scope_list(text: &str) -> Result<Vec<(kith_core::ScopeId, u64)>, AppError> {
    api::paths::parse_scope_list(text).ok_or(AppError::BadRequest(
        "scopes must be SCOPE:POSITION pairs separated by commas (at most 256)".into(),
    ))
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
    let limit = query
        .limit
        .unwrap_or(api::MAX_BLOBS_PER_FETCH)
        .clamp(1, api::MAX_BLOBS_PER_FETCH);
    let scopes = query.scopes.as_deref().map(scope_list).transpose()?;
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
    let scopes = scope_list(&query.scopes)?;
    let checkpoints = state.storage.checkpoints(alliance, &scopes).await?;
    Ok(Json(CheckpointList { checkpoints }))
}

/// `GET /healthz`
pub async fn healthz() -> &'static str {
    "ok"
}
