//! A device may hold only a few live-update connections open at once: each
//! holds a connection for up to ten minutes, so a changed client could
//! otherwise tie up the relay. A real relay process over HTTP; devices
//! driven in this process.

use std::io::Read;
use std::time::{Duration, Instant};

use kith_core::api;
use kith_core::{HttpRequest, Role};
use kith_tests::device::{Device, now};
use kith_tests::{Relay, send};
use rand_core::OsRng;

const MAX_OPEN_PER_DEVICE: usize = 4;

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

fn events_request(device: &Device) -> HttpRequest {
    let alliance = device.client.profile().alliance;
    device.client.sign_request(
        "GET",
        api::paths::events(alliance),
        vec![],
        now(),
        &mut OsRng,
    )
}

/// Opens a live-updates stream; once it is open (its first event read),
/// the response, holding the connection. Otherwise the status and body.
fn open_stream(
    base: &str,
    device: &Device,
) -> Result<ureq::http::Response<ureq::Body>, (u16, String, String)> {
    let request = events_request(device);
    let mut call = agent().get(format!("{base}{}", request.path));
    for (name, value) in &request.headers {
        call = call.header(*name, value);
    }
    let mut response = call.call().expect("the relay answers");
    let status = response.status().as_u16();
    if status != 200 {
        let retry = response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        return Err((status, body, retry));
    }
    let mut first = [0u8; 64];
    let read = response
        .body_mut()
        .as_reader()
        .read(&mut first)
        .expect("the stream says something");
    assert!(
        String::from_utf8_lossy(&first[..read]).contains("ready"),
        "a stream starts with ready"
    );
    Ok(response)
}

#[test]
fn a_device_holds_only_a_few_live_connections_and_gets_them_back() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let url = relay.url();
    let mut steward = Device::steward(&url, Vec::new());
    steward.sync();
    let mut member = Device::invited(&mut steward, "Alex", Role::Member);
    member.sync();

    let mut open: Vec<_> = (0..MAX_OPEN_PER_DEVICE)
        .map(|i| {
            open_stream(&url, &steward).unwrap_or_else(|e| panic!("stream {i} should open: {e:?}"))
        })
        .collect();

    // One more stream, or a long poll, is refused with a plain reason.
    let (status, body, retry) = open_stream(&url, &steward).expect_err("one too many");
    assert_eq!(status, 429, "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "too_many_streams");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("close one (another Kith tab"),
        "{body}"
    );
    assert_eq!(retry, "30");
    let alliance = steward.client.profile().alliance;
    let cohort = steward.cohort();
    let poll = steward.client.sign_request(
        "GET",
        api::paths::wait_for_blobs(alliance, 1 << 40, Some(&[(cohort, 0)]), 5),
        vec![],
        now(),
        &mut OsRng,
    );
    assert_eq!(send(&url, &poll).0, 429, "a long poll counts too");
    // A plain fetch (no wait) is not a live connection.
    let plain = steward.client.sign_request(
        "GET",
        api::paths::blobs_after(alliance, 0, 10, Some(&[(cohort, 0)])),
        vec![],
        now(),
        &mut OsRng,
    );
    assert_eq!(send(&url, &plain).0, 200);

    // The limit is each device's own.
    let other = open_stream(&url, &member).expect("another device's stream opens");

    // A stream the device closes gives its place back.
    drop(open.pop());
    let start = Instant::now();
    let again = loop {
        match open_stream(&url, &steward) {
            Ok(stream) => break stream,
            Err((429, _, _)) if start.elapsed() < Duration::from_secs(60) => {
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(e) => panic!("a closed stream's place should come back: {e:?}"),
        }
    };
    drop((open, other, again));
}
