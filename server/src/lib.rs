//! # kith-server
//!
//! The relay: it authenticates devices, stores encrypted blobs it cannot
//! read, and serves them back in order. [`app`] builds the router (testable
//! without a port); [`run`] serves it on a listener until shutdown.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod ops;
pub mod routes;
pub mod storage;
pub mod web;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use kith_core::Timestamp;
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

use storage::Storage;

/// Limits the relay enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of blob data one alliance may hold.
    pub alliance_quota_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            alliance_quota_bytes: 1 << 30,
        }
    }
}

/// Shared by every request.
pub struct AppState<S> {
    /// Where blobs live.
    pub storage: Arc<S>,
    /// What the relay allows.
    pub limits: Arc<Limits>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            limits: self.limits.clone(),
        }
    }
}

impl<S> AppState<S> {
    /// State over `storage`, with default limits.
    pub fn new(storage: S) -> Self {
        Self::with_limits(storage, Limits::default())
    }

    /// State over `storage` with `limits`.
    pub fn with_limits(storage: S, limits: Limits) -> Self {
        Self {
            storage: Arc::new(storage),
            limits: Arc::new(limits),
        }
    }
}

/// Housekeeping every minute: forgets request nonces too old to be accepted
/// again anyway.
pub fn spawn_maintenance<S: Storage>(storage: Arc<S>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        loop {
            every.tick().await;
            let horizon = now()
                .millis()
                .saturating_sub(2 * kith_core::api::MAX_CLOCK_SKEW_MS);
            if let Err(e) = storage.forget_nonces(Timestamp(horizon)).await {
                tracing::warn!(error = %e, "cannot forget old request nonces");
            }
        }
    })
}

/// The relay's clock.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// The whole HTTP surface.
pub fn app<S: Storage>(state: AppState<S>, web_dir: Option<PathBuf>) -> Router {
    let stats = metrics::Metrics::new();
    let api = Router::new()
        .route("/v1/alliances", post(routes::register_alliance::<S>))
        .route(
            "/v1/alliances/{alliance}/invites",
            post(routes::publish_invite::<S>),
        )
        .route(
            "/v1/invites/{invite}/redeem",
            post(routes::redeem_invite::<S>),
        )
        .route(
            "/v1/alliances/{alliance}/log",
            post(routes::append_log::<S>).get(routes::fetch_log::<S>),
        )
        .route(
            "/v1/alliances/{alliance}/checkpoints",
            get(routes::fetch_checkpoints::<S>),
        )
        .route(
            "/v1/alliances/{alliance}/blobs",
            post(routes::append_blobs::<S>).get(routes::fetch_blobs::<S>),
        )
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(ops::readyz::<S>))
        .route("/metrics", get(metrics::serve).with_state(stats.clone()))
        .route("/openapi.json", get(ops::openapi))
        .with_state(state);
    api.merge(web::routes(web_dir))
        .layer(axum::middleware::from_fn_with_state(stats, metrics::track))
        // On every answer: no framing (clickjacking), no MIME sniffing, no
        // referrer, so no address of ours leaks to another site.
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http().make_span_with(
            // Method and path only: never headers (signatures) or bodies.
            |req: &axum::http::Request<_>| {
                tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
            },
        ))
}

/// Serves `app` on `listener` until `shutdown` resolves, then finishes the
/// requests in flight.
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
