//! Request authentication: every API request is signed by a device key.
//! [`Signed`] is an extractor that checks the signature, the clock and the
//! nonce, and hands the handler the verified device and body.
//! [`SignedUnspent`] checks the same but leaves recording the nonce to the
//! handler, so a write records it in its own commit (appends: one flush to
//! disk per request, not two).

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::HeaderMap;
use http_body_util::LengthLimitError;
use kith_core::api::{self, HEADER_DEVICE, HEADER_NONCE, HEADER_SIGNATURE, HEADER_TIME};
use kith_core::{DeviceId, Timestamp};

use kith_core::relay_rules::Refusal;

use crate::error::AppError;
use crate::storage::{RequestNonce, Storage};
use crate::{AppState, now};

/// A request whose signature checked out.
pub struct Signed {
    /// The device that signed it.
    pub device: DeviceId,
    /// The body it signed.
    pub body: Bytes,
}

impl Signed {
    /// The body as JSON of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, AppError> {
        serde_json::from_slice(&self.body)
            .map_err(|e| AppError::bad_request(format!("the request body is not valid: {e}")))
    }
}

/// A request whose signature checked out and whose nonce is new, but not
/// yet recorded: the handler must record it, with its write
/// ([`crate::storage::Storage::append`]) or by [`SignedUnspent::spend`].
pub struct SignedUnspent {
    /// The request.
    pub signed: Signed,
    /// Its nonce, to record.
    pub nonce: RequestNonce,
}

impl SignedUnspent {
    /// Records the nonce on its own, for a request refused before its write.
    pub async fn spend<S: Storage>(&self, state: &AppState<S>) -> Result<(), AppError> {
        if state.storage.first_use(self.nonce).await? {
            Ok(())
        } else {
            Err(REPLAYED)
        }
    }
}

/// A nonce seen before.
pub const REPLAYED: AppError = AppError::Unauthenticated(
    "this request was already received (replayed); send a new request (a Kith app signs each one afresh)",
);

impl<S: Storage> FromRequest<AppState<S>> for Signed {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState<S>) -> Result<Self, AppError> {
        let (signed, nonce) = verify(req, state).await?;
        // Kept in storage, so a request replayed through another relay
        // instance, or after a restart, is refused too.
        if !state.storage.first_use(nonce).await? {
            return Err(REPLAYED);
        }
        take_allowance(state, signed.device)?;
        Ok(signed)
    }
}

impl<S: Storage> FromRequest<AppState<S>> for SignedUnspent {
    type Rejection = AppError;

    async fn from_request(req: Request, state: &AppState<S>) -> Result<Self, AppError> {
        let (signed, nonce) = verify(req, state).await?;
        // Checked here (a read) so a replay spends no allowance; recorded
        // with the write, which refuses it if a copy got there first.
        if state.storage.nonce_seen(nonce).await? {
            return Err(REPLAYED);
        }
        take_allowance(state, signed.device)?;
        Ok(Self { signed, nonce })
    }
}

/// Counted only for a request whose signature checks out and that is new,
/// so no one can spend another device's allowance, not even by replaying a
/// request they captured. (Kith apps sign each retry afresh, so a refused
/// request's nonce is not needed again.)
fn take_allowance<S: Storage>(state: &AppState<S>, device: DeviceId) -> Result<(), AppError> {
    state
        .rate
        .take(device)
        .map_err(|wait| AppError::RateLimited(whole_seconds(wait)))
}

/// Checks a request's signature, clock and nonce format, and reads its body.
async fn verify<S: Storage>(
    req: Request,
    state: &AppState<S>,
) -> Result<(Signed, RequestNonce), AppError> {
    let (parts, body) = req.into_parts();
    let headers = &parts.headers;
    let device: DeviceId = header(headers, HEADER_DEVICE)?
        .parse()
        .map_err(|_| AppError::Unauthenticated("the kith-device header is not a device id"))?;
    let time: u64 = header(headers, HEADER_TIME)?
        .parse()
        .map_err(|_| AppError::Unauthenticated("the kith-time header is not a number"))?;
    let nonce = header(headers, HEADER_NONCE)?;
    let signature = header(headers, HEADER_SIGNATURE)?;
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AppError::Unauthenticated(
            "the kith-nonce header must be 32 hex digits",
        ));
    }
    let now = now();
    if now.millis().abs_diff(time) > api::MAX_CLOCK_SKEW_MS {
        return Err(AppError::Unauthenticated(
            "the request's time is too far from the relay's clock; check this device's date and time",
        ));
    }
    let body = read_body(
        body,
        Duration::from_secs(state.limits.body_read_timeout_secs),
    )
    .await?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    if !api::verify_request(
        &device,
        signature,
        parts.method.as_str(),
        path,
        time,
        nonce,
        &body,
    ) {
        return Err(AppError::Unauthenticated(
            "the request signature does not match; send it again from a Kith app, and if this goes on, check that nothing between this device and the relay (a proxy) alters requests",
        ));
    }
    let mut nonce_bytes = [0u8; 16];
    hex::decode_to_slice(nonce, &mut nonce_bytes)
        .map_err(|_| AppError::Unauthenticated("the kith-nonce header must be 32 hex digits"))?;
    let nonce = RequestNonce {
        device,
        nonce: nonce_bytes,
        time: Timestamp(time),
    };
    Ok((Signed { device, body }, nonce))
}

/// Reads a body of at most [`api::MAX_REQUEST_BYTES`] within `timeout`, so
/// a client that sends it too slowly is cut off (408). Only the body: a
/// response that streams for long once its headers are sent is not limited.
async fn read_body(body: Body, timeout: Duration) -> Result<Bytes, AppError> {
    match tokio::time::timeout(timeout, axum::body::to_bytes(body, api::MAX_REQUEST_BYTES)).await {
        Err(_) => Err(AppError::TimedOut(whole_seconds(timeout))),
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => {
            let error = e.into_inner();
            if error.downcast_ref::<LengthLimitError>().is_some() {
                Err(Refusal::TooLarge(api::MAX_REQUEST_BYTES).into())
            } else {
                tracing::debug!(error = %error, "request body unreadable");
                Err(AppError::bad_request(
                    "the request body could not be read (the connection broke?); try again",
                ))
            }
        }
    }
}

/// Seconds to tell a client, rounded up and at least 1.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs()
        .saturating_add(u64::from(d.subsec_nanos() > 0))
        .max(1)
}

fn header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, AppError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or(AppError::Unauthenticated(
            "this request is not signed; use a Kith app or the kith command",
        ))
}
