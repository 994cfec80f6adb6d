//! Serves the built PWA, compressed where the browser accepts it.
//!
//! The build writes a brotli (`.br`) and a gzip (`.gz`) copy beside each
//! file that shrinks (`web/app/scripts/compress.mjs`); the best one the
//! browser accepts is sent. Files under `/assets/` carry a hash of their
//! content in their names, so browsers may keep them for a year without
//! asking again; every other file (`index.html`, the service worker, the
//! web manifest, the release manifest) is revalidated on each use, or
//! updates would not reach members.

use std::path::PathBuf;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, Response};
use axum::routing::get;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeaderLayer;

/// For files whose names change with their content.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// For everything else: use a kept copy only after asking.
const REVALIDATE: &str = "no-cache";

/// Routes for the app at `/`, or a page saying how to build it.
pub fn routes<S: Clone + Send + Sync + 'static>(web_dir: Option<PathBuf>) -> Router<S> {
    match web_dir.filter(|d| d.join("index.html").is_file()) {
        Some(dir) => {
            // A missing asset is a 404, never the app's page: that page must
            // not be kept for a year under an asset's name.
            let assets = Router::new()
                .fallback_service(compressed(ServeDir::new(dir.join("assets"))))
                .layer(axum::middleware::map_response(cache_assets));
            let pages = compressed(ServeDir::new(&dir)).fallback(
                ServeFile::new(dir.join("index.html"))
                    .precompressed_br()
                    .precompressed_gzip(),
            );
            Router::new()
                .nest("/assets", assets)
                .fallback_service(pages)
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CACHE_CONTROL,
                    HeaderValue::from_static(REVALIDATE),
                ))
                // Which copy is sent depends on Accept-Encoding: caches on
                // the way must keep them apart.
                .layer(SetResponseHeaderLayer::appending(
                    header::VARY,
                    HeaderValue::from_static("accept-encoding"),
                ))
        }
        None => Router::new().route("/", get(|| async { Html(NOT_BUILT) })),
    }
}

fn compressed(dir: ServeDir) -> ServeDir {
    dir.precompressed_br().precompressed_gzip()
}

/// Hashed assets are kept for a year; anything else under `/assets/` (a
/// 404, say) is not.
async fn cache_assets(mut response: Response) -> Response {
    let value = if response.status().is_success() {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(value));
    response
}

const NOT_BUILT: &str = "<!doctype html><meta charset=utf-8><title>Kith relay</title>\
<p>This Kith relay is running, but the app was not built. \
Run <code>cargo xtask run</code> from the Kith folder, or start the relay with <code>--web-dir</code>.";

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    /// A built app: a page, a service worker and one hashed asset, each
    /// with the compressed copies the build writes.
    fn built() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("assets")).unwrap();
        for (path, text) in [
            ("index.html", "<!doctype html>page"),
            ("sw.js", "service worker"),
            ("assets/app-1a2b.js", "app code"),
        ] {
            std::fs::write(root.join(path), text).unwrap();
            std::fs::write(root.join(format!("{path}.br")), format!("br:{text}")).unwrap();
            std::fs::write(root.join(format!("{path}.gz")), format!("gz:{text}")).unwrap();
        }
        dir
    }

    async fn get(dir: &tempfile::TempDir, path: &str, accept: &str) -> (StatusCode, Response) {
        let app: Router = routes(Some(dir.path().to_owned()));
        let mut request = Request::get(path);
        if !accept.is_empty() {
            request = request.header(header::ACCEPT_ENCODING, accept);
        }
        let response = app
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        (response.status(), response)
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response
            .headers()
            .get(name)
            .map_or("", |v| v.to_str().unwrap())
    }

    async fn body(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn sends_the_best_copy_the_browser_accepts() {
        let dir = built();
        for (accept, encoding, text) in [
            ("gzip, deflate, br", "br", "br:app code"),
            ("gzip", "gzip", "gz:app code"),
            ("", "", "app code"),
        ] {
            let (status, response) = get(&dir, "/assets/app-1a2b.js", accept).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(header_of(&response, header::CONTENT_ENCODING), encoding);
            assert_eq!(header_of(&response, header::VARY), "accept-encoding");
            assert_eq!(body(response).await, text, "for Accept-Encoding {accept:?}");
        }
        let (_, page) = get(&dir, "/", "br").await;
        assert_eq!(header_of(&page, header::CONTENT_ENCODING), "br");
        // The app's own pages (any path that is not a file) are the page too.
        let (status, page) = get(&dir, "/somewhere", "gzip").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body(page).await, "gz:<!doctype html>page");
    }

    #[tokio::test]
    async fn hashed_assets_are_kept_and_everything_else_revalidated() {
        let dir = built();
        let (_, asset) = get(&dir, "/assets/app-1a2b.js", "br").await;
        assert_eq!(header_of(&asset, header::CACHE_CONTROL), IMMUTABLE);
        for path in ["/", "/index.html", "/sw.js", "/somewhere"] {
            let (status, response) = get(&dir, path, "br").await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(
                header_of(&response, header::CACHE_CONTROL),
                REVALIDATE,
                "{path}"
            );
        }
        // A missing asset is not answered with the page, to be kept a year.
        let (status, missing) = get(&dir, "/assets/gone-9z9z.js", "br").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(header_of(&missing, header::CACHE_CONTROL), REVALIDATE);
    }
}
