//! Errors as the client sees them: a status, a short code and a sentence
//! saying what was wrong and what to do. Internal detail stays in the log.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kith_core::api::ErrorBody;

use crate::storage::StorageError;

/// Everything a handler can answer with instead of success.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request lacks a valid device signature.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// The device is known but may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No such thing.
    #[error("{0}")]
    NotFound(&'static str),
    /// Taken, used or otherwise in the way.
    #[error("{0}")]
    Conflict(&'static str),
    /// The invite has expired.
    #[error("this invite has expired; ask for a new one")]
    Gone,
    /// The body is too large.
    #[error("the request is too large (at most {0} bytes); send fewer or smaller blobs")]
    TooLarge(usize),
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
    /// The request body did not arrive in time (a slow or stalled client).
    #[error(
        "the request body did not arrive in time (the relay waits {0} seconds for it); check the connection and try again"
    )]
    TimedOut(u64),
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The relay's own data is not in a state it can use; details are logged.
    #[error("the relay cannot serve this alliance right now; try again later")]
    Unavailable,
    /// Storage failed; details are logged.
    #[error("the relay could not save or read data; try again later")]
    Storage(#[from] StorageError),
}

impl AppError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            AppError::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            AppError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            AppError::Gone => (StatusCode::GONE, "expired"),
            AppError::TooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
            AppError::OverQuota(_) => (StatusCode::INSUFFICIENT_STORAGE, "over_quota"),
            AppError::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            AppError::TimedOut(_) => (StatusCode::REQUEST_TIMEOUT, "timeout"),
            AppError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
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
        if let AppError::RateLimited(seconds) = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
