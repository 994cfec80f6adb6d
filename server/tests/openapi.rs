//! docs/openapi.json against the router: every route `app()` serves is
//! described, every described path and method is served (and only those),
//! signed operations refuse unsigned requests with a documented status, and
//! every `$ref` resolves.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use kith_server::storage::SqliteStorage;
use kith_server::{AppState, app};
use serde_json::Value;
use tower::ServiceExt;

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

fn document() -> Value {
    serde_json::from_str(kith_server::ops::OPENAPI).expect("docs/openapi.json is JSON")
}

/// Paths given to `.route("...")` in the router's source.
fn routes_in_source() -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    for source in [include_str!("../src/lib.rs"), include_str!("../src/web.rs")] {
        for (at, _) in source.match_indices(".route(") {
            let rest = source[at + ".route(".len()..].trim_start();
            let Some(rest) = rest.strip_prefix('"') else {
                continue;
            };
            paths.insert(rest[..rest.find('"').unwrap()].to_owned());
        }
    }
    paths
}

/// A concrete path for a template: ids where it has parameters.
fn concrete(template: &str) -> String {
    template
        .replace("{alliance}", "00112233445566778899aabbccddeeff")
        .replace("{invite}", "ffeeddccbbaa99887766554433221100")
}

async fn router() -> (axum::Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path()).await.unwrap();
    (app(AppState::new(storage), None), dir)
}

async fn status(app: &axum::Router, method: &str, path: &str) -> StatusCode {
    let request = Request::builder()
        .method(method.to_uppercase().as_str())
        .uri(path)
        .body(Body::empty())
        .unwrap();
    app.clone().oneshot(request).await.unwrap().status()
}

#[test]
fn the_document_has_the_required_openapi_fields() {
    let doc = document();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string());
    assert!(doc["info"]["version"].is_string());
    let paths = doc["paths"].as_object().unwrap();
    assert!(!paths.is_empty());
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            let responses = operation["responses"].as_object();
            assert!(
                responses.is_some_and(|r| !r.is_empty()),
                "{method} {path} documents no response"
            );
            assert!(
                operation["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
        }
    }
}

#[test]
fn every_reference_resolves() {
    fn refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let doc = document();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty());
    for reference in found {
        let pointer = reference.strip_prefix('#').expect("local references only");
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} points at nothing"
        );
    }
}

#[test]
fn every_route_the_router_serves_is_documented_and_no_other() {
    let documented: BTreeSet<String> = document()["paths"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let served = routes_in_source();
    assert!(
        served.contains("/v1/alliances/{alliance}/blobs"),
        "{served:?}"
    );
    let undocumented: Vec<_> = served.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "served but not in docs/openapi.json (describe them there): {undocumented:?}"
    );
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        unserved.is_empty(),
        "in docs/openapi.json but not routed in app(): {unserved:?}"
    );
}

#[tokio::test]
async fn documented_methods_are_served_and_others_refused() {
    let (app, _dir) = router().await;
    let doc = document();
    let mut seen = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = concrete(path);
        for method in METHODS {
            let got = status(&app, method, &uri).await;
            let Some(operation) = item.get(method) else {
                assert_eq!(
                    got,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is not documented, yet not refused"
                );
                continue;
            };
            let signed = operation["security"]
                .as_array()
                .is_some_and(|s| !s.is_empty());
            let expected = if signed {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            assert_eq!(got, expected, "unsigned {method} {path}");
            assert!(
                operation["responses"]
                    .get(got.as_u16().to_string())
                    .is_some(),
                "{method} {path} answers {got}, which it does not document"
            );
            seen.insert(format!("{method} {path}"), got);
        }
    }
    assert!(seen.len() >= 14, "{seen:?}");
}

#[tokio::test]
async fn undocumented_paths_are_not_found() {
    let (app, _dir) = router().await;
    for path in [
        "/v1",
        "/v1/alliances/00112233445566778899aabbccddeeff",
        "/v1/alliances/00112233445566778899aabbccddeeff/members",
        "/v1/invites/ffeeddccbbaa99887766554433221100",
        "/admin",
        "/metrics/extra",
    ] {
        assert_eq!(
            status(&app, "get", path).await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}

#[tokio::test]
async fn the_relay_serves_this_document() {
    let (app, _dir) = router().await;
    let request = Request::get("/openapi.json").body(Body::empty()).unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), document());
}
