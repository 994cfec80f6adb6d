//! Prometheus metrics, served at `/metrics` in the OpenMetrics text format,
//! on a listener of their own (`metrics_listen`): they show when people
//! write, so they are not part of the public API.
//!
//! Labels are only route templates (`/v1/alliances/{alliance}/blobs`),
//! methods, statuses and error codes: never the id of an alliance, device,
//! invite or blob, which is metadata the relay must not spread. Each
//! [`crate::app`] has its own registry, so tests in one process do not mix.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Frame, SizeHint};
use kith_core::api::ErrorBody;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The largest error body read to find its code; ours are far smaller.
const MAX_ERROR_BODY: u64 = 4096;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    route: String,
    code: String,
}

type Durations = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// Every metric the relay keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Durations,
    refused: Family<RefusalLabels, Counter>,
    in_flight: Gauge,
    blobs: Counter,
    blob_bytes: Counter,
}

tokio::task_local! {
    /// The metrics of the app serving the current request, so a handler can
    /// count what only it knows without taking another argument.
    static CURRENT: Arc<Metrics>;
}

impl Metrics {
    /// A fresh registry with every metric at zero.
    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("kith");
        let requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route template, method and status",
            requests.clone(),
        );
        let durations: Durations = Family::new_with_constructor(|| {
            // 1 ms to about 16 s.
            Histogram::new(exponential_buckets(0.001, 2.0, 15))
        });
        registry.register_with_unit(
            "http_request_duration",
            "Time until the answer's head, by route template and method",
            Unit::Seconds,
            durations.clone(),
        );
        let refused = Family::default();
        registry.register(
            "requests_refused",
            "Requests answered with an error body, by route template and error code",
            refused.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "http_requests_in_flight",
            "Requests being answered, open live-update streams included",
            in_flight.clone(),
        );
        let blobs = Counter::default();
        registry.register(
            "blobs_appended",
            "Blobs accepted in appends (a blob sent again counts again)",
            blobs.clone(),
        );
        let blob_bytes = Counter::default();
        registry.register(
            "blob_bytes_appended",
            "Bytes of blob data accepted in appends",
            blob_bytes.clone(),
        );
        Arc::new(Self {
            registry,
            requests,
            durations,
            refused,
            in_flight,
            blobs,
            blob_bytes,
        })
    }

    /// Every metric, in the OpenMetrics text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// `GET /metrics`
pub async fn serve(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        metrics.render(),
    )
        .into_response()
}

/// Counts blobs accepted by an append (called by the handler).
pub fn blobs_appended(blobs: &[kith_core::BlobRecord]) {
    // Outside a request (no app around it) there is nothing to count into.
    let _ = CURRENT.try_with(|metrics| {
        metrics.blobs.inc_by(blobs.len() as u64);
        metrics
            .blob_bytes
            .inc_by(blobs.iter().map(|b| b.data.len() as u64).sum());
    });
}

/// Middleware for every route: counts and times each request.
pub async fn track(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let in_flight = InFlight::start(&metrics.in_flight);
    let started = Instant::now();
    // The template the router matched, never the path itself (it holds ids).
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("other", MatchedPath::as_str)
        .to_owned();
    let method = method_label(request.method());
    let response = CURRENT.scope(metrics.clone(), next.run(request)).await;
    metrics
        .durations
        .get_or_create(&RouteLabels {
            route: route.clone(),
            method,
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            route: route.clone(),
            method,
            status: response.status().as_u16(),
        })
        .inc();
    let (response, code) = error_code(response).await;
    if let Some(code) = code {
        metrics
            .refused
            .get_or_create(&RefusalLabels { route, code })
            .inc();
    }
    // In flight until the body is sent (a stream may stay open for long).
    response.map(|body| {
        Body::new(Tracked {
            body,
            _in_flight: in_flight,
        })
    })
}

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::HEAD => "HEAD",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The `error` code of an error answer ([`ErrorBody`]), with the answer
/// rebuilt unchanged. Codes come from our own handlers, so they are few; an
/// unexpected shape counts as `other`.
async fn error_code(response: Response) -> (Response, Option<String>) {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let small = http_body::Body::size_hint(response.body())
        .exact()
        .is_some_and(|n| n <= MAX_ERROR_BODY);
    if !(response.status().is_client_error() || response.status().is_server_error())
        || !is_json
        || !small
    {
        return (response, None);
    }
    let (parts, body) = response.into_parts();
    // A body of known, small size is already in memory: this cannot fail.
    let bytes = axum::body::to_bytes(body, MAX_ERROR_BODY as usize)
        .await
        .unwrap_or_default();
    let code = serde_json::from_slice::<ErrorBody>(&bytes)
        .ok()
        .map(|b| b.error)
        .filter(|c| c.len() <= 32 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or_else(|| "other".into());
    (Response::from_parts(parts, Body::from(bytes)), Some(code))
}

/// One request in flight, until dropped.
struct InFlight(Gauge);

impl InFlight {
    fn start(gauge: &Gauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// A response body that holds its request's [`InFlight`] until it is done.
struct Tracked {
    body: Body,
    _in_flight: InFlight,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// `/metrics`, for the metrics listener.
pub fn router(stats: Arc<Metrics>) -> axum::Router {
    axum::Router::new().route("/metrics", axum::routing::get(serve).with_state(stats))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn router(metrics: Arc<Metrics>) -> Router {
        Router::new()
            .route(
                "/v1/alliances/{alliance}/blobs",
                post(|| async {
                    blobs_appended(&[]);
                    let body = ErrorBody {
                        error: "forbidden".into(),
                        message: "no".into(),
                    };
                    (StatusCode::FORBIDDEN, axum::Json(body))
                }),
            )
            .route("/metrics", get(serve).with_state(metrics.clone()))
            .layer(axum::middleware::from_fn_with_state(metrics, track))
    }

    async fn call(app: &Router, method: &str, uri: &str) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_are_counted_by_template_and_refusals_by_code_with_no_id() {
        let metrics = Metrics::new();
        let app = router(metrics.clone());
        let id = "0123456789abcdef0123456789abcdef";
        let (status, body) = call(&app, "POST", &format!("/v1/alliances/{id}/blobs")).await;
        // The error body reaches the client unchanged.
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.contains("\"error\":\"forbidden\""), "{body}");
        call(&app, "GET", "/nowhere/else").await;

        let (status, text) = call(&app, "GET", "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        let line = "kith_http_requests_total{route=\"/v1/alliances/{alliance}/blobs\",method=\"POST\",status=\"403\"} 1";
        assert!(text.contains(line), "{text}");
        assert!(text.contains(
            "kith_requests_refused_total{route=\"/v1/alliances/{alliance}/blobs\",code=\"forbidden\"} 1"
        ), "{text}");
        assert!(
            text.contains("route=\"other\",method=\"GET\",status=\"404\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("kith_http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(!text.contains(id), "an id in a label: {text}");
        assert!(!text.contains("/nowhere"), "a raw path in a label: {text}");
    }

    #[tokio::test]
    async fn a_request_is_in_flight_until_its_body_is_sent() {
        let metrics = Metrics::new();
        let app = router(metrics.clone());
        let request = Request::builder()
            .method("POST")
            .uri("/v1/alliances/x/blobs")
            .body(Body::empty())
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(metrics.in_flight.get(), 1);
        drop(response);
        assert_eq!(metrics.in_flight.get(), 0);
    }

    #[tokio::test]
    async fn blobs_are_counted_only_inside_a_request() {
        let metrics = Metrics::new();
        let blob = kith_core::BlobRecord {
            id: kith_core::BlobId([1; 16]),
            doc: kith_core::DocId([2; 16]),
            scope: kith_core::ScopeId([3; 16]),
            covers: None,
            seq: None,
            data: vec![0; 100],
        };
        blobs_appended(std::slice::from_ref(&blob));
        CURRENT
            .scope(metrics.clone(), async {
                blobs_appended(&[blob.clone(), blob])
            })
            .await;
        assert_eq!(metrics.blobs.get(), 2);
        assert_eq!(metrics.blob_bytes.get(), 200);
    }
}
