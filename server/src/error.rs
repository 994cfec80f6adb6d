//! Errors as the client sees them: a status, a short code and a sentence
//! saying what was wrong and what to do. Internal detail stays in the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kith_core::api::ErrorBody;
use kith_core::relay_rules::Refusal;

use crate::storage::StorageError;

/// Everything a handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request lacks a valid device signature.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A refusal the relay's rules (in kith-core) decided.
    #[error("{0}")]
    Refused(#[from] Refusal),
    /// The alliance holds as much as the relay allows it.
    #[error(
        "this alliance has used all the storage this relay allows it ({0} bytes); ask the relay's operator for more"
    )]
    OverQuota(u64),
    /// This device sent more requests than the relay allows it for now;
    /// it may try again after the number of seconds given.
    #[error(
        "this device sent too many requests; wait {0} seconds, then try again (a Kith app does this by itself)"
    )]
    RateLimited(u64),
    /// This device holds as many live-update connections open as it may.
    #[error(
        "this device already has {0} live-update connections open, the most the relay allows; close one (another Kith tab, or kith sync --watch) and try again"
    )]
    TooManyStreams(usize),
    /// The request body did not arrive in time (a slow or stalled client).
    #[error(
        "the request body did not arrive in time (the relay waits {0} seconds for it); check the connection and try again"
    )]
    TimedOut(u64),
    /// The relay's own data is not in a state it can use; details are logged.
    #[error("the relay cannot serve this alliance right now; try again later")]
    Unavailable,
    /// Storage failed; details are logged.
    #[error("the relay could not save or read data; try again later")]
    Storage(#[from] StorageError),
}

impl AppError {
    /// A malformed request, with what was wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AppError::Refused(Refusal::BadRequest(message.into().into()))
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AppError::Refused(refusal) => (
                StatusCode::from_u16(refusal.status()).unwrap_or(StatusCode::BAD_REQUEST),
                refusal.code(),
            ),
            AppError::OverQuota(_) => (StatusCode::INSUFFICIENT_STORAGE, "over_quota"),
            AppError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::TooManyStreams(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_streams"),
            AppError::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            AppError::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage"),
            AppError::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let AppError::Storage(e) = &self {
            tracing::error!(error = %e, "storage error");
        } else {
            tracing::info!(status = status.as_u16(), code, "request refused");
        }
        let body = ErrorBody {
            error: code.into(),
            message: self.to_string(),
        };
        let mut response = (status, Json(body)).into_response();
        let retry_after = match self {
            AppError::RateLimited(seconds) => Some(seconds),
            // A stream that ends frees its place; the longest long poll is 30 s.
            AppError::TooManyStreams(_) => Some(crate::live::MAX_WAIT_SECS),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
