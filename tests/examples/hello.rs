//! The baseline of the relay load bench (`tests/benches/load.rs`): an axum
//! server on the same runtime and serving loop as the relay that does no work.
//! It reads each request's body and answers 200 with JSON the size of the
//! relay's answer: `{"stored": [id]}` for a POST, a one-blob page for a GET.
//! So the relay's figures divided by these are the cost of what the relay
//! does (signature, nonce, membership, storage), not of HTTP on this machine.
//!
//! `cargo run --release -p kith-tests --example hello -- 127.0.0.1:PORT`

use std::sync::OnceLock;

use axum::Router;
use axum::body::Bytes;
use axum::http::{Method, header};
use axum::response::IntoResponse;

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
    axum::serve(listener, Router::new().fallback(hello))
        .await
        .unwrap();
}

/// `_body`: extracting it reads the whole body, as the relay does.
async fn hello(method: Method, _body: Bytes) -> impl IntoResponse {
    static PAGE: OnceLock<String> = OnceLock::new();
    let answer = if method == Method::GET {
        // A page holding one ~1.3 KB blob, as a device's fetch after its own
        // append gets from the relay.
        PAGE.get_or_init(|| {
            format!(
                r#"{{"blobs":[{{"id":"{id}","doc":"{id}","scope":"{id}","seq":1,"data":"{data}"}}],"next":1,"more":false}}"#,
                id = "ab".repeat(16),
                data = "A".repeat(1324usize.div_ceil(3) * 4),
            )
        })
        .clone()
    } else {
        format!(r#"{{"stored":["{}"]}}"#, "ab".repeat(16))
    };
    ([(header::CONTENT_TYPE, "application/json")], answer)
}
