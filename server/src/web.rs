//! Serves the built PWA. The service worker script must never be cached by
//! the browser's HTTP cache, or updates would not reach members.

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::Html;
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// Routes for the app at `/`, or a page saying how to build it.
pub fn routes<S: Clone + Send + Sync + 'static>(web_dir: Option<PathBuf>) -> Router<S> {
    match web_dir.filter(|d| d.join("index.html").is_file()) {
        Some(dir) => Router::new()
            .fallback_service(
                ServeDir::new(&dir).not_found_service(ServeFile::new(dir.join("index.html"))),
            )
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-cache"),
            )),
        None => Router::new().route("/", get(|| async { Html(NOT_BUILT) })),
    }
}

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Kith relay</title>\
<p>This Kith relay is running, but the app was not built. \
Run <code>cargo xtask run</code> from the Kith folder, or start the relay with <code>--web-dir</code>.";
