//! The relay refuses what it must, with a clear message, and changes nothing:
//! unsigned, badly signed, stale, replayed and unauthorised requests; used
//! invites; oversized bodies; conflicting blob ids. Driven from outside, over
//! HTTP, against a real relay process.

use kith_core::api::{self, AppendBlobs, BlobRecord, HttpRequest};
use kith_core::{BlobId, Client, DeviceKeys, DocId, Joining, NewAlliance, Role, Timestamp};
use kith_tests::{Relay, send};
use rand_core::OsRng;
use serde_json::Value;

fn now() -> Timestamp {
    Timestamp(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    )
}

fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut n);
    n
}

fn steward(relay: &Relay) -> Client {
    let (client, _) = Client::create_alliance(
        NewAlliance {
            name: "Test".into(),
            relay: relay.url(),
            pseudonym: "Sam".into(),
            researchers: vec![],
        },
        &mut OsRng,
    )
    .unwrap();
    let (status, _) = send(&relay.url(), &client.register_request(now(), &mut OsRng));
    assert_eq!(status, 201);
    client
}

fn signed_by(keys: &DeviceKeys, method: &'static str, path: String, body: Vec<u8>) -> HttpRequest {
    api::signed_request(keys, method, path, body, now(), nonce())
}

fn append_body(id: u8, data: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&AppendBlobs {
        blobs: vec![BlobRecord {
            id: BlobId([id; 16]),
            doc: DocId([1; 16]),
            data: data.to_vec(),
        }],
    })
    .unwrap()
}

fn assert_refused(answer: (u16, Value), status: u16, says: &str) {
    assert_eq!(answer.0, status, "{:?}", answer.1);
    let message = answer.1["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "message {message:?} should say {says:?}"
    );
    assert!(answer.1["error"].is_string());
}

#[test]
fn the_relay_refuses_what_it_must_and_changes_nothing() {
    let base = tempfile::tempdir().unwrap();
    let relay = Relay::start(base.path());
    let url = relay.url();
    let owner = steward(&relay);
    let alliance = owner.profile().alliance;
    let member = DeviceKeys::generate(&mut OsRng);

    // A member joins properly, so there is a device to impersonate.
    let (invite, publish) = owner
        .create_invite(Role::Member, 60_000, now(), &mut OsRng)
        .unwrap();
    assert_eq!(send(&url, &publish).0, 201);
    let joining = Joining::new(&invite.link(), "Alex", &mut OsRng).unwrap();
    let redeem = joining.request(now(), &mut OsRng);
    assert_eq!(send(&url, &redeem).0, 200);
    // The same invite, for another device: refused.
    let again = Joining::new(&invite.link(), "Mallory", &mut OsRng).unwrap();
    assert_refused(
        send(&url, &again.request(now(), &mut OsRng)),
        409,
        "already used",
    );

    let fetch_path = api::paths::blobs_after(alliance, 0, 10);
    let blobs_path = api::paths::blobs(alliance);

    // No signature at all.
    let unsigned = HttpRequest {
        method: "GET",
        path: fetch_path.clone(),
        headers: vec![],
        body: vec![],
    };
    assert_refused(send(&url, &unsigned), 401, "not signed");

    // A device that is not a member of this alliance.
    assert_refused(
        send(&url, &signed_by(&member, "GET", fetch_path.clone(), vec![])),
        403,
        "not a member",
    );
    assert_refused(
        send(
            &url,
            &signed_by(&member, "POST", blobs_path.clone(), append_body(1, b"x")),
        ),
        403,
        "not a member",
    );

    // A bad signature: the body was changed after signing.
    let mut tampered = owner_request(
        &owner,
        "POST",
        blobs_path.clone(),
        append_body(2, b"original"),
    );
    tampered.body = append_body(2, b"changed!");
    assert_refused(send(&url, &tampered), 401, "signature does not match");

    // A signature by a member's device, but claiming another device.
    let mut borrowed = signed_by(&member, "GET", fetch_path.clone(), vec![]);
    borrowed.headers[0].1 = owner.device_id().to_string();
    assert_refused(send(&url, &borrowed), 401, "signature does not match");

    // A stale request (its time is ten minutes old).
    let stale = api::signed_request(
        &DeviceKeys::generate(&mut OsRng),
        "GET",
        fetch_path.clone(),
        vec![],
        Timestamp(now().millis() - 10 * 60 * 1000),
        nonce(),
    );
    assert_refused(send(&url, &stale), 401, "too far from the relay's clock");

    // A replayed request: the first is served, the copy refused.
    let first = owner_request(&owner, "POST", blobs_path.clone(), append_body(3, b"hello"));
    assert_eq!(send(&url, &first).0, 200);
    assert_refused(send(&url, &first), 401, "replayed");

    // Same blob id, same bytes: idempotent. Same id, other bytes: conflict.
    assert_eq!(
        send(
            &url,
            &owner_request(&owner, "POST", blobs_path.clone(), append_body(3, b"hello"))
        )
        .0,
        200
    );
    assert_refused(
        send(
            &url,
            &owner_request(&owner, "POST", blobs_path.clone(), append_body(3, b"other")),
        ),
        409,
        "different blob",
    );

    // Too large a body.
    let huge = vec![b'a'; api::MAX_REQUEST_BYTES + 1];
    assert_refused(
        send(
            &url,
            &owner_request(&owner, "POST", blobs_path.clone(), huge),
        ),
        413,
        "too large",
    );

    // Nothing above changed the stored blobs: exactly the one good append.
    let (status, page) = send(&url, &owner_request(&owner, "GET", fetch_path, vec![]));
    assert_eq!(status, 200);
    let blobs = page["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 1, "{page}");
    assert_eq!(blobs[0]["id"], BlobId([3; 16]).to_string());
    assert_eq!(page["more"], false);
}

/// A request signed by the steward's device (through the core, as a client would).
fn owner_request(owner: &Client, method: &'static str, path: String, body: Vec<u8>) -> HttpRequest {
    owner.sign_request(method, path, body, now(), &mut OsRng)
}
