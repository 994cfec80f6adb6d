//! An app served from its own origin, apart from the relay: the relay
//! answers the browsers of the origins its operator names, and no others
//! (`server/src/cors.rs`). Real relay process, real HTTP.

use kith_tests::Relay;

const APP: &str = "http://app.kith.test:5173";

/// Sends `method path` with an `Origin` and any extra headers; returns the
/// status and the response's headers.
fn ask(
    relay: &Relay,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .allow_non_standard_methods(true)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{}{path}", relay.url()));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = agent
        .run(request.body(()).unwrap())
        .expect("the relay answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A browser's question before a signed POST from the app's page.
fn preflight(relay: &Relay, origin: &str) -> (u16, Vec<(String, String)>) {
    ask(
        relay,
        "OPTIONS",
        "/v1/alliances/00000000000000000000000000000000/blobs",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            (
                "access-control-request-headers",
                "kith-device,kith-time,kith-nonce,kith-signature,content-type",
            ),
        ],
    )
}

#[test]
fn the_relay_answers_the_browsers_of_the_app_origins_it_names_only() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start_with_env(base.path(), None, &[("KITH_APP_ORIGINS", APP)]);

    let (status, headers) = preflight(&relay, APP);
    assert!((200..300).contains(&status), "{status} {headers:?}");
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));
    let allowed = header(&headers, "access-control-allow-headers").unwrap_or_default();
    for name in [
        "kith-device",
        "kith-time",
        "kith-nonce",
        "kith-signature",
        "content-type",
    ] {
        assert!(allowed.contains(name), "{name} not allowed: {allowed}");
    }
    assert_eq!(header(&headers, "access-control-max-age"), Some("3600"));
    let (_, headers) = ask(&relay, "GET", "/healthz", &[("origin", APP)]);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some(APP));

    // Any other origin gets no permission: its page cannot read the answer.
    for other in [
        "http://evil.test",
        "http://app.kith.test:5174",
        "https://app.kith.test:5173",
    ] {
        let (_, headers) = preflight(&relay, other);
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            None,
            "{other}"
        );
        let (_, headers) = ask(&relay, "GET", "/healthz", &[("origin", other)]);
        assert_eq!(
            header(&headers, "access-control-allow-origin"),
            None,
            "{other}"
        );
    }
}

#[test]
fn a_relay_that_names_no_app_origin_answers_no_other_origin() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let (_, headers) = preflight(&relay, APP);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
    let (_, headers) = ask(&relay, "GET", "/healthz", &[("origin", APP)]);
    assert_eq!(header(&headers, "access-control-allow-origin"), None);
}

#[test]
fn a_wrong_app_origin_stops_the_relay_saying_what_to_give() {
    let out = std::process::Command::new(kith_tests::bin("kith-server"))
        .args(["--listen", "127.0.0.1:0", "--data-dir"])
        .arg(tempfile::tempdir().unwrap().path())
        .env("KITH_APP_ORIGINS", "https://app.example.org/path")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is not a web origin"), "{said}");
}
