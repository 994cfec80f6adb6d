//! The relay's HTTP API: paths, bodies and request signatures. Shared by the
//! relay and every client so there is one definition of each.
//!
//! Bodies are JSON; bytes inside them are standard base64. Every request
//! carries four headers, and the relay checks the signature over
//! `kith/request/v1\n METHOD \n PATH?QUERY \n TIME \n NONCE \n hex(SHA-256(body))`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::encoding::base64_bytes;
use crate::ids::{AllianceId, BlobId, DeviceId, DocId, InviteId, MemberId, ScopeId};
use crate::keys::{DeviceKeys, verify};
use crate::membership::SignedEntry;
pub use crate::role::Role;
use crate::time::Timestamp;

/// Header: the signing device's id (hex).
pub const HEADER_DEVICE: &str = "kith-device";
/// Header: the request time, milliseconds since the epoch.
pub const HEADER_TIME: &str = "kith-time";
/// Header: 16 random bytes (hex), so no two requests sign the same text.
pub const HEADER_NONCE: &str = "kith-nonce";
/// Header: the Ed25519 signature (base64).
pub const HEADER_SIGNATURE: &str = "kith-signature";

/// How far a request's time may be from the relay's clock.
pub const MAX_CLOCK_SKEW_MS: u64 = 5 * 60 * 1000;
/// The most blobs in one append.
pub const MAX_BLOBS_PER_APPEND: usize = 64;
/// The most blobs one fetch returns.
pub const MAX_BLOBS_PER_FETCH: usize = 256;
/// The most membership entries one fetch returns.
pub const MAX_ENTRIES_PER_FETCH: usize = 512;
/// The most membership entries one append carries.
pub const MAX_ENTRIES_PER_APPEND: usize = 64;
/// The largest blob the relay accepts, in bytes.
pub const MAX_BLOB_BYTES: usize = 256 * 1024;
/// The largest request body the relay accepts, in bytes.
pub const MAX_REQUEST_BYTES: usize = 2 * 1024 * 1024;

/// An HTTP request a client should send, fully formed and signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: &'static str,
    /// Path and query, starting with `/`.
    pub path: String,
    /// Headers to send (the body is JSON when present).
    pub headers: Vec<(&'static str, String)>,
    /// The body (empty for `GET`).
    pub body: Vec<u8>,
}

/// The relay's answer, as the client received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// Whether the relay did what was asked (a 2xx status).
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The relay's own sentence for a refusal (from its JSON error body).
    pub fn refusal_message(&self) -> String {
        serde_json::from_slice::<ErrorBody>(&self.body)
            .map(|e| e.message)
            .unwrap_or_else(|_| "no details".into())
    }
}

/// Builds and signs a request.
pub fn signed_request(
    keys: &DeviceKeys,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    now: Timestamp,
    nonce: [u8; 16],
) -> HttpRequest {
    let nonce = hex::encode(nonce);
    let message = signing_message(method, &path, now.millis(), &nonce, &body);
    let signature = BASE64.encode(keys.sign(&message));
    let mut headers = vec![
        (HEADER_DEVICE, keys.device_id().to_string()),
        (HEADER_TIME, now.millis().to_string()),
        (HEADER_NONCE, nonce),
        (HEADER_SIGNATURE, signature),
    ];
    if !body.is_empty() {
        headers.push(("content-type", "application/json".into()));
    }
    HttpRequest {
        method,
        path,
        headers,
        body,
    }
}

/// The text a request signature covers.
pub fn signing_message(method: &str, path: &str, time: u64, nonce: &str, body: &[u8]) -> Vec<u8> {
    format!(
        "kith/request/v1\n{method}\n{path}\n{time}\n{nonce}\n{}",
        hex::encode(Sha256::digest(body))
    )
    .into_bytes()
}

/// Checks a request signature (the relay calls this).
pub fn verify_request(
    device: &DeviceId,
    signature_b64: &str,
    method: &str,
    path: &str,
    time: u64,
    nonce: &str,
    body: &[u8],
) -> bool {
    let Ok(signature) = BASE64.decode(signature_b64) else {
        return false;
    };
    verify(
        device,
        &signing_message(method, path, time, nonce, body),
        &signature,
    )
}

/// `POST /v1/alliances`: a steward's device registers a new alliance.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterAlliance {
    /// The new alliance's id, chosen by the steward's device.
    pub alliance_id: AllianceId,
    /// The first entries of its membership log, starting with `Create`.
    pub log: Vec<SignedEntry>,
    /// A one-use token from the relay's operator (hex), which a relay asks
    /// for unless its registration is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token: Option<String>,
}

/// `POST /v1/alliances/{alliance}/log`: entries to append to the membership log.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppendLog {
    /// Entries in order; the first must follow the relay's last.
    pub entries: Vec<SignedEntry>,
}

/// `GET /v1/alliances/{alliance}/log?after=N`: entries from index N on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LogPage {
    /// The entries, in order.
    pub entries: Vec<SignedEntry>,
    /// Whether more follow.
    pub more: bool,
}

/// `POST /v1/alliances/{alliance}/invites`: publish an invite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PublishInvite {
    /// The invite's id.
    pub invite_id: InviteId,
    /// SHA-256 of the one-time token (hex); the token itself is only in the link.
    pub token_sha256: String,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The membership entry announcing the invite (it names the role).
    pub entry: SignedEntry,
    /// The invite package, an age file encrypted to the invite's own identity.
    #[serde(with = "base64_bytes")]
    pub package: Vec<u8>,
}

/// `POST /v1/invites/{invite}/redeem`: the joining device, signing with its new key.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RedeemInvite {
    /// The one-time token from the link (hex).
    pub token: String,
}

/// The answer to a redeemed invite.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Redeemed {
    /// The alliance joined.
    pub alliance_id: AllianceId,
    /// The invite package.
    #[serde(with = "base64_bytes")]
    pub package: Vec<u8>,
    /// The whole membership log, so the new device can check it and add its join.
    pub log: Vec<SignedEntry>,
}

/// A blob as the relay stores and serves it: opaque ids and bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobRecord {
    /// Chosen by the writer; appends are idempotent on it.
    pub id: BlobId,
    /// The document it belongs to (so a withdrawal can purge a whole document).
    pub doc: DocId,
    /// The scope whose readers it is for (so a device fetches only what it can read).
    pub scope: ScopeId,
    /// For a checkpoint: the relay position up to which it holds the scope's batches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub covers: Option<u64>,
    /// For a batch: its number in its device's chain in the scope (so the
    /// relay can check that a removal names every batch it acknowledged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The age file.
    #[serde(with = "base64_bytes")]
    pub data: Vec<u8>,
}

/// `GET /v1/alliances/{alliance}/checkpoints?scopes=...`: the newest
/// checkpoint of each scope asked for that covers more than the position given.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointList {
    /// At most one per scope.
    pub checkpoints: Vec<BlobRecord>,
}

/// `POST /v1/alliances/{alliance}/blobs`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AppendBlobs {
    /// Up to [`MAX_BLOBS_PER_APPEND`] blobs.
    pub blobs: Vec<BlobRecord>,
}

/// The answer to an append: every blob now stored (new or already there).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Appended {
    /// The ids stored.
    pub stored: Vec<BlobId>,
}

/// `GET /v1/alliances/{alliance}/blobs?after=CURSOR&limit=N`: one page.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct BlobPage {
    /// Blobs after the cursor, in the relay's order.
    pub blobs: Vec<BlobRecord>,
    /// The cursor to ask after next time.
    pub next: u64,
    /// Whether more pages follow.
    pub more: bool,
}

/// `POST /v1/alliances/{alliance}/withdrawals`, from a steward: delete from
/// the relay everything a removed member's devices wrote (the member
/// withdrew from the study).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Withdraw {
    /// The member.
    pub member: MemberId,
}

/// What the relay deleted for a withdrawal.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Withdrawn {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes deleted.
    pub bytes: u64,
}

/// Every error the relay sends: a message a person can act on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A short machine-readable code.
    pub error: String,
    /// What went wrong and what to do.
    pub message: String,
}

/// Paths, built in one place.
pub mod paths {
    use super::*;

    /// Register an alliance.
    pub fn alliances() -> String {
        "/v1/alliances".into()
    }
    /// Publish an invite.
    pub fn invites(alliance: AllianceId) -> String {
        format!("/v1/alliances/{alliance}/invites")
    }
    /// Redeem an invite.
    pub fn redeem(invite: InviteId) -> String {
        format!("/v1/invites/{invite}/redeem")
    }
    /// Append blobs.
    pub fn blobs(alliance: AllianceId) -> String {
        format!("/v1/alliances/{alliance}/blobs")
    }
    /// Fetch blobs after a cursor: of every scope, or of the scopes given,
    /// each after its own position too (`scopes=SCOPE:POS,...`).
    pub fn blobs_after(
        alliance: AllianceId,
        after: u64,
        limit: usize,
        scopes: Option<&[(ScopeId, u64)]>,
    ) -> String {
        let mut path = format!("/v1/alliances/{alliance}/blobs?after={after}&limit={limit}");
        if let Some(scopes) = scopes {
            path.push_str("&scopes=");
            path.push_str(&scope_list(scopes));
        }
        path
    }
    /// Delete a removed member's writing.
    pub fn withdrawals(alliance: AllianceId) -> String {
        format!("/v1/alliances/{alliance}/withdrawals")
    }
    /// Live updates as server-sent events: `ready`, then `changed` whenever
    /// the alliance changes.
    pub fn events(alliance: AllianceId) -> String {
        format!("/v1/alliances/{alliance}/events")
    }
    /// A long poll: like [`blobs_after`], but when nothing is there yet the
    /// relay waits up to `wait_secs` for something to arrive.
    pub fn wait_for_blobs(
        alliance: AllianceId,
        after: u64,
        scopes: Option<&[(ScopeId, u64)]>,
        wait_secs: u64,
    ) -> String {
        format!(
            "{}&wait={wait_secs}",
            blobs_after(alliance, after, 1, scopes)
        )
    }
    /// The newest checkpoint of each scope past the position given.
    pub fn checkpoints(alliance: AllianceId, scopes: &[(ScopeId, u64)]) -> String {
        format!(
            "/v1/alliances/{alliance}/checkpoints?scopes={}",
            scope_list(scopes)
        )
    }
    /// `SCOPE:POS,SCOPE:POS`.
    fn scope_list(scopes: &[(ScopeId, u64)]) -> String {
        scopes
            .iter()
            .map(|(scope, position)| format!("{scope}:{position}"))
            .collect::<Vec<_>>()
            .join(",")
    }
    /// Reads `SCOPE:POS,...` (at most 256 scopes).
    pub fn parse_scope_list(text: &str) -> Option<Vec<(ScopeId, u64)>> {
        if text.is_empty() {
            return Some(Vec::new());
        }
        let items: Vec<&str> = text.split(',').collect();
        if items.len() > 256 {
            return None;
        }
        items
            .into_iter()
            .map(|item| {
                let (scope, position) = item.split_once(':')?;
                Some((scope.parse().ok()?, position.parse().ok()?))
            })
            .collect()
    }
    /// Append membership entries.
    pub fn log(alliance: AllianceId) -> String {
        format!("/v1/alliances/{alliance}/log")
    }
    /// Fetch membership entries from index `from` on.
    pub fn log_from(alliance: AllianceId, from: u64) -> String {
        format!("/v1/alliances/{alliance}/log?from={from}")
    }
}

/// A request body as JSON.
pub(crate) fn json<T: serde::Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).expect("request bodies encode")
}

/// The relay's refusal as an error.
pub(crate) fn relay_error(response: &HttpResponse) -> crate::error::Error {
    crate::error::Error::Relay {
        status: response.status,
        message: response.refusal_message(),
    }
}
