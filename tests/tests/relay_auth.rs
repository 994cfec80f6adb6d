//! The relay refuses what it must, with a clear message, and changes nothing:
//! unsigned, badly signed, stale, replayed and unauthorised requests; used
//! invites; membership entries a device may not write; removed devices;
//! oversized bodies; conflicting blob ids. Driven from outside, over HTTP,
//! against a real relay process.

use kith_core::api::{self, AppendBlobs, BlobRecord, HttpRequest};
use kith_core::{
    BlobId, Client, DeviceKeys, DocId, Joining, NewAlliance, Role, ScopeId, Timestamp,
};
use kith_tests::device::{nonce, now};
use kith_tests::{Relay, answer, catch_up, send};
use rand_core::OsRng;
use serde_json::Value;

fn steward(relay: &Relay) -> Client {
    let (client, _) = Client::create_alliance(
        NewAlliance {
            name: "Test".into(),
            cohort: "Cohort".into(),
            relay: relay.url(),
            pseudonym: "Sam".into(),
            researchers: vec![],
            history: kith_core::History::FromJoin,
        },
        now(),
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

fn append_body(scope: ScopeId, id: u8, data: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&AppendBlobs {
        blobs: vec![BlobRecord {
            id: BlobId([id; 16]),
            doc: DocId([1; 16]),
            scope,
            covers: None,
            seq: None,
            data: [kith_core::relay_rules::AGE_HEADER, data].concat(),
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
    let mut owner = steward(&relay);
    let alliance = owner.profile().alliance;
    let member = DeviceKeys::generate(&mut OsRng);

    // A member joins properly, so there is a device to impersonate.
    let (invite, publish) = owner
        .create_invite(Role::Member, None, 60_000, now(), &mut OsRng)
        .unwrap();
    assert_eq!(send(&url, &publish).0, 201);
    let mut joining = Joining::new(&invite.link(), "Alex", &mut OsRng).unwrap();
    let redeem = joining.next_request(now(), &mut OsRng).unwrap();
    let (status, redeemed) = send(&url, &redeem);
    assert_eq!(status, 200);
    // The same invite, for another device: refused.
    let mut again = Joining::new(&invite.link(), "Mallory", &mut OsRng).unwrap();
    assert_refused(
        send(&url, &again.next_request(now(), &mut OsRng).unwrap()),
        409,
        "already used",
    );
    // Mallory cannot join by appending a join entry without having redeemed.
    joining
        .receive(answer(200, &redeemed), now(), &mut OsRng)
        .unwrap();
    let join_entry = joining.next_request(now(), &mut OsRng).unwrap();
    let mut stolen = join_entry.clone();
    stolen.headers = signed_by(&member, "POST", stolen.path.clone(), stolen.body.clone()).headers;
    assert_refused(send(&url, &stolen), 403, "redeem the invite");
    // Alex's own join goes in.
    assert_eq!(send(&url, &join_entry).0, 201);
    joining
        .receive(answer(201, &Value::Null), now(), &mut OsRng)
        .unwrap();
    let (alex, _) = joining.finish(now(), &mut OsRng).unwrap();
    // The same request again is a replay; the same entry, freshly signed,
    // no longer follows the log's last entry.
    assert_refused(send(&url, &join_entry), 401, "replayed");
    let resent = alex.sign_request(
        "POST",
        join_entry.path.clone(),
        join_entry.body.clone(),
        now(),
        &mut OsRng,
    );
    assert_refused(send(&url, &resent), 409, "membership changed");

    let cohort = owner.cohort().unwrap();
    let fetch_path = api::paths::blobs_after(alliance, 0, 10, Some(&[(cohort, 0)]));
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
            &signed_by(
                &member,
                "POST",
                blobs_path.clone(),
                append_body(cohort, 1, b"x"),
            ),
        ),
        403,
        "not a member",
    );

    // A bad signature: the body was changed after signing.
    let mut tampered = owner_request(
        &owner,
        "POST",
        blobs_path.clone(),
        append_body(cohort, 2, b"original"),
    );
    tampered.body = append_body(cohort, 2, b"changed!");
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
    let first = owner_request(
        &owner,
        "POST",
        blobs_path.clone(),
        append_body(cohort, 3, b"hello"),
    );
    assert_eq!(send(&url, &first).0, 200);
    assert_refused(send(&url, &first), 401, "replayed");

    // Same blob id, same bytes: idempotent. Same id, other bytes: conflict.
    assert_eq!(
        send(
            &url,
            &owner_request(
                &owner,
                "POST",
                blobs_path.clone(),
                append_body(cohort, 3, b"hello")
            )
        )
        .0,
        200
    );
    assert_refused(
        send(
            &url,
            &owner_request(
                &owner,
                "POST",
                blobs_path.clone(),
                append_body(cohort, 3, b"other"),
            ),
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

    // A blob that is not an age file: every reader would take it for damage
    // done by the relay, so the relay refuses it to the member who sent it.
    let not_age = serde_json::to_vec(&AppendBlobs {
        blobs: vec![BlobRecord {
            id: BlobId([4; 16]),
            doc: DocId([1; 16]),
            scope: cohort,
            covers: None,
            seq: None,
            data: b"plain bytes, not an age file".to_vec(),
        }],
    })
    .unwrap();
    assert_refused(
        send(
            &url,
            &owner_request(&owner, "POST", blobs_path.clone(), not_age),
        ),
        400,
        "must be an age-encrypted file",
    );

    // Nothing above changed the stored blobs: exactly the one good append.
    let (status, page) = send(
        &url,
        &owner_request(&owner, "GET", fetch_path.clone(), vec![]),
    );
    assert_eq!(status, 200);
    let blobs = page["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 1, "{page}");
    assert_eq!(blobs[0]["id"], BlobId([3; 16]).to_string());
    assert_eq!(page["more"], false);

    // A member cannot remove a steward (nor anyone the last steward): the
    // core refuses to build it, and so would every device and the relay
    // (the same rules replay everywhere).
    let mut alex = alex;
    assert!(
        alex.remove_member(owner.profile().member, now(), &mut OsRng)
            .is_err()
    );

    // The steward removes Alex; from then on Alex's device is refused.
    catch_up(&mut owner, &url);
    let (removal, _) = owner
        .remove_member(alex.profile().member, now(), &mut OsRng)
        .unwrap();
    assert_eq!(send(&url, &removal).0, 201);
    owner.change_accepted().unwrap();
    for request in [
        alex.sign_request("GET", fetch_path.clone(), vec![], now(), &mut OsRng),
        alex.sign_request(
            "POST",
            blobs_path.clone(),
            append_body(cohort, 9, b"late"),
            now(),
            &mut OsRng,
        ),
    ] {
        assert_refused(send(&url, &request), 403, "removed");
    }
    // Its log fetch shows it the log only as far as its removal (see
    // auth_matrix.rs), so it can check it before it deletes what it holds.
}

/// A request signed by the steward's device (through the core, as a client would).
fn owner_request(owner: &Client, method: &'static str, path: String, body: Vec<u8>) -> HttpRequest {
    owner.sign_request(method, path, body, now(), &mut OsRng)
}
