//! Endpoints for operators and their tools: readiness and the API's
//! description. (`/healthz` is in `routes`; `/metrics` in `metrics`.)

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use kith_core::api::ErrorBody;

use crate::AppState;
use crate::storage::{Storage, StorageError};

/// How long storage may take to answer before the relay counts as not ready;
/// a load balancer's check should not hang on a stuck database.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

/// The OpenAPI 3.1 description of the HTTP API.
pub const OPENAPI: &str = include_str!("../../docs/openapi.json");

/// `GET /readyz`: 200 when storage answers; 503 otherwise, so a load
/// balancer sends requests elsewhere. `/healthz` only says the process lives.
pub async fn readyz<S: Storage>(State(state): State<AppState<S>>) -> Response {
    match tokio::time::timeout(READY_TIMEOUT, state.storage.ready()).await {
        Ok(result) => readiness(result),
        Err(_) => {
            tracing::warn!(
                "not ready: storage did not answer within {}s",
                READY_TIMEOUT.as_secs()
            );
            not_ready(
                "the relay's database did not answer in time; check that it is running and reachable (details are in the relay's log)",
            )
        }
    }
}

fn readiness(result: Result<(), StorageError>) -> Response {
    match result {
        Ok(()) => "ready".into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: storage does not answer");
            not_ready(
                "the relay cannot reach its database; check that it is running and reachable (details are in the relay's log)",
            )
        }
    }
}

fn not_ready(message: &str) -> Response {
    let body = ErrorBody {
        error: "not_ready".into(),
        message: message.into(),
    };
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

/// `GET /openapi.json`
pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

/// Makes and keeps a new one-use registration token; returns it (hex), for
/// the operator to give to a steward. Only its SHA-256 is stored.
pub async fn new_registration_token<S: Storage>(
    storage: &S,
) -> Result<zeroize::Zeroizing<String>, StorageError> {
    use rand_core::RngCore;
    use sha2::Digest;
    let mut raw = zeroize::Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(&mut *raw);
    let hash: [u8; 32] = sha2::Sha256::digest(*raw).into();
    storage.add_registration_token(hash, crate::now()).await?;
    Ok(zeroize::Zeroizing::new(hex::encode(*raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn storage_that_fails_is_not_ready_with_a_clear_error() {
        let response = readiness(Err(StorageError(sqlx::Error::PoolClosed)));
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body: ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(body.error, "not_ready");
        assert!(body.message.contains("check that it is running"));
    }

    #[test]
    fn the_description_is_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
