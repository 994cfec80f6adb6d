//! # kith-server
//!
//! The relay: it authenticates devices, stores encrypted blobs it cannot
//! read, and serves them back in order. [`app`] builds the router (testable
//! without a port); [`run`] serves it on a listener until shutdown.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod cors;
pub mod error;
pub mod invite_keys;
pub mod limits;
pub mod live;
pub mod memberships;
pub mod metrics;
pub mod ops;
pub mod purge;
pub mod routes;
pub mod storage;
pub mod web;

pub use cors::AppOrigins;

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::{get, post};
use kith_core::{Timestamp, api};
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

use storage::Storage;

/// Limits the relay enforces. Every one is answered with a status and a
/// message saying what to do (docs/PROTOCOL.md, "Limits").
#[derive(Debug, Clone)]
pub struct Limits {
    /// Bytes of blob data one alliance may hold (507 past it).
    pub alliance_quota_bytes: u64,
    /// Requests one device may send at once before it must slow down (429);
    /// 0 turns the per-device limit off.
    pub device_burst: u32,
    /// Requests per minute a device's allowance refills by.
    pub device_refill_per_minute: u32,
    /// Seconds a client has to send a request's headers, and the longest a
    /// kept-alive connection waits for the next request; then it is closed.
    pub header_read_timeout_secs: u64,
    /// Seconds a client has to send a request's body (408 past it).
    pub body_read_timeout_secs: u64,
    /// Days a batch stays after a checkpoint supersedes it, so devices that
    /// were offline fetch it rather than the checkpoint; 0 keeps them all.
    pub superseded_retention_days: u64,
    /// Seconds requests in flight get to finish at shutdown; then their
    /// connections are closed (a live-updates stream would never finish).
    pub shutdown_grace_secs: u64,
    /// Whether anyone may create an alliance here; otherwise only with a
    /// one-use token from the operator (`kith-server registration-token`).
    pub open_registration: bool,
}

/// A big alliance's whole history, in blobs: the first sync of a new device
/// should never meet the rate limit.
const BIG_HISTORY_BLOBS: u32 = 65_536;

impl Default for Limits {
    fn default() -> Self {
        Self {
            alliance_quota_bytes: 1 << 30,
            // The first sync of a big history in the smallest pages (64
            // blobs an upload; fetches take 256), with no wait at all: 1,024
            // requests.
            device_burst: BIG_HISTORY_BLOBS / api::MAX_BLOBS_PER_APPEND as u32,
            // Then 32 requests a second, 2,048 blobs a second in 64-blob
            // pages: more than a phone opens (about 0.25 ms each on a desktop
            // core, docs/BENCHMARKS.md), so only a runaway or hostile client
            // waits.
            device_refill_per_minute: 32 * 60,
            // hyper's own default; headers are a few hundred bytes.
            header_read_timeout_secs: 30,
            // The largest body (2 MiB) at 256 kbit/s takes about 66 s.
            body_read_timeout_secs: 120,
            shutdown_grace_secs: 30,
            superseded_retention_days: 30,
            open_registration: false,
        }
    }
}

/// Shared by every request.
pub struct AppState<S> {
    /// Where blobs live.
    pub storage: Arc<S>,
    /// What the relay allows.
    pub limits: Arc<Limits>,
    /// Each device's request allowance (this instance's).
    pub rate: Arc<limits::DeviceRate>,
    /// Live-update streams, ended when the relay shuts down.
    pub live: Arc<live::Live>,
    /// Each alliance's replayed membership (this instance's).
    pub memberships: Arc<memberships::Memberships>,
    /// Devices whose invite packages are deleted (this instance's memo).
    pub settled: Arc<invite_keys::Settled>,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            storage: self.storage.clone(),
            limits: self.limits.clone(),
            rate: self.rate.clone(),
            live: self.live.clone(),
            memberships: self.memberships.clone(),
            settled: self.settled.clone(),
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
            rate: Arc::new(limits::DeviceRate::new(
                limits.device_burst,
                limits.device_refill_per_minute,
            )),
            limits: Arc::new(limits),
            live: Arc::new(live::Live::default()),
            memberships: Arc::default(),
            settled: Arc::default(),
        }
    }
}

/// Housekeeping: every minute, forgets request nonces too old to be
/// accepted again anyway; every hour, deletes the packages of invites that
/// expired more than a day ago, and batches that checkpoints superseded
/// more than `Limits::superseded_retention_days` ago.
pub fn spawn_maintenance<S: Storage>(state: &AppState<S>) -> tokio::task::JoinHandle<()> {
    let (storage, limits) = (state.storage.clone(), state.limits.clone());
    tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
        for minute in 0u64.. {
            every.tick().await;
            let horizon = now()
                .millis()
                .saturating_sub(2 * kith_core::api::MAX_CLOCK_SKEW_MS);
            if let Err(e) = storage.forget_nonces(Timestamp(horizon)).await {
                tracing::warn!(error = %e, "cannot forget old request nonces");
            }
            if minute % 60 == 0 {
                purge::stale_invite_packages(&*storage, now()).await;
            }
            let days = limits.superseded_retention_days;
            if days > 0
                && minute % 60 == 0
                && let Err(e) = purge::superseded(&*storage, days.saturating_mul(24 * 3600)).await
            {
                tracing::warn!(error = %e, "cannot delete superseded batches");
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

/// The whole public HTTP surface: the API and the app.
pub fn app<S: Storage>(state: AppState<S>, web_dir: Option<PathBuf>) -> Router {
    app_and_metrics(state, web_dir).0
}

/// The public surface, and the metrics it keeps as a router of their own
/// (`/metrics`), for a listener apart from the public one: they show when
/// people write, so only the operator's monitoring should reach them.
pub fn app_and_metrics<S: Storage>(
    state: AppState<S>,
    web_dir: Option<PathBuf>,
) -> (Router, Router) {
    app_for_origins(state, web_dir, &AppOrigins::default())
}

/// As [`app_and_metrics`], answering browsers of an app served from
/// `origins` apart from the relay (`cors.rs`).
pub fn app_for_origins<S: Storage>(
    state: AppState<S>,
    web_dir: Option<PathBuf>,
    origins: &AppOrigins,
) -> (Router, Router) {
    let stats = metrics::Metrics::new();
    let metrics = metrics::router(stats.clone());
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
        .route(
            "/v1/alliances/{alliance}/withdrawals",
            post(purge::withdraw::<S>),
        )
        .route("/v1/alliances/{alliance}/events", get(live::events::<S>))
        .route("/healthz", get(routes::healthz))
        .route("/readyz", get(ops::readyz::<S>))
        .route("/openapi.json", get(ops::openapi))
        .layer(axum::middleware::from_fn_with_state(
            state.limits.clone(),
            limits::refuse_oversized_bodies,
        ))
        .with_state(state);
    let api = match origins.layer() {
        Some(cors) => api.layer(cors),
        None => api,
    };
    let public = api
        .merge(web::routes(web_dir))
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
        ));
    (public, metrics)
}

/// Serves `app` on `listener` with the default [`Limits`]; see [`run_with`].
pub async fn run(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    run_with(listener, app, &Limits::default(), shutdown).await
}

/// Serves `app` on `listener` (HTTP/1.1) until `shutdown` resolves, then
/// finishes the requests in flight, for at most `limits.shutdown_grace_secs`.
///
/// Not `axum::serve`: it sets no header-read timeout, so a client sending
/// its headers a byte at a time (slowloris) would hold a connection forever.
/// HTTP/1.1 only, as hyper's HTTP/2 has no such timeout; browsers' HTTP/2
/// ends at the TLS proxy in front of the relay.
pub async fn run_with(
    listener: TcpListener,
    app: Router,
    limits: &Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use std::time::Duration;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(limits.header_read_timeout_secs));
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while connections.try_join_next().is_some() {}
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut stopping = stopping.clone();
        connections.spawn(async move {
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "connection ended");
                    }
                    return;
                }
                _ = stopping.wait_for(|s| *s) => {}
            }
            // Answer the request in flight, then close.
            connection.as_mut().graceful_shutdown();
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended");
            }
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let grace = Duration::from_secs(limits.shutdown_grace_secs);
    let finished = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            open = connections.len(),
            "requests still in flight after the shutdown grace period; closing their connections"
        );
        connections.shutdown().await;
    }
    Ok(())
}
