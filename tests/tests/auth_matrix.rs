//! The authorisation matrix: every signed endpoint, sent every kind of
//! request the relay must refuse, against a real relay process, on SQLite
//! and on PostgreSQL. Each refusal is checked three ways: the status, a
//! message saying what was wrong and what to do, and that nothing the relay
//! stores changed (read from its database before and after). Each is then
//! followed by the same request made properly, which must succeed: so it was
//! the fault under test, and nothing else, that was refused.
//!
//! Request nonces live in the database, so a replay is refused also through
//! another relay instance on the same PostgreSQL database, and after a restart.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use kith_core::api::{self, AppendBlobs, AppendLog, BlobRecord, HttpRequest, PublishInvite};
use kith_core::{
    BlobId, Client, DeviceKeys, DocId, Invite, InviteId, Joining, NewAlliance, Role, ScopeId,
    Timestamp,
};
use kith_tests::device::{nonce, now};
use kith_tests::{Relay, TestDatabase, answer, catch_up, send};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use sqlx::Row;

/// A signed endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Endpoint {
    /// `POST /v1/alliances`
    Register,
    /// `POST /v1/alliances/{a}/invites`
    PublishInvite,
    /// `POST /v1/invites/{i}/redeem`
    Redeem,
    /// `GET /v1/alliances/{a}/log`
    FetchLog,
    /// `POST /v1/alliances/{a}/log`
    AppendLog,
    /// `GET /v1/alliances/{a}/checkpoints`
    FetchCheckpoints,
    /// `GET /v1/alliances/{a}/blobs`
    FetchBlobs,
    /// `POST /v1/alliances/{a}/blobs`
    AppendBlobs,
    /// `POST /v1/alliances/{a}/withdrawals`
    Withdraw,
    /// `GET /v1/alliances/{a}/events` (a stream: only its status is read)
    Events,
}

/// What is wrong with the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Case {
    /// No kith-* headers at all.
    Unsigned,
    /// The signature altered (one bit).
    BadSignature,
    /// Sent a second time, nonce and all, after the first was served.
    Replayed,
    /// Signed a minute beyond the allowed clock skew in the past.
    Stale,
    /// Signed a minute beyond the allowed clock skew in the future.
    FromTheFuture,
    /// Signed by an active device of another alliance.
    OtherAlliance,
    /// Signed by a device removed from this alliance.
    Removed,
    /// Redeem only: the invite has expired.
    Expired,
    /// Redeem only: another device already used the invite.
    UsedByAnother,
    /// Redeem only: a token that is not the invite's.
    WrongToken,
}

/// How the relay must refuse: status, error code, words the message must hold.
type Refusal = (u16, &'static str, &'static str);

const NOT_SIGNED: Refusal = (401, "unauthenticated", "not signed; use a Kith app");
const BAD_SIGNATURE: Refusal = (401, "unauthenticated", "signature does not match");
const REPLAYED: Refusal = (
    401,
    "unauthenticated",
    "already received (replayed); send a new",
);
const STALE: Refusal = (
    401,
    "unauthenticated",
    "too far from the relay's clock; check this device's date and time",
);
const NOT_A_MEMBER: Refusal = (
    403,
    "forbidden",
    "not a member of this alliance; join with an invite first",
);
const REMOVED: Refusal = (
    403,
    "forbidden",
    "removed from the alliance; ask a steward for a new invite",
);
const NOT_ITS_CREATOR: Refusal = (
    400,
    "bad_request",
    "must start with an entry its steward's device signed",
);
const USED: Refusal = (409, "conflict", "already used; ask for a new one");
const EXPIRED: Refusal = (410, "expired", "expired; ask for a new one");
const UNKNOWN_INVITE: Refusal = (404, "not_found", "not known here; check the link");

use Case::*;
use Endpoint::*;

/// Every signed endpoint, and how it refuses each kind of bad request.
#[rustfmt::skip]
const MATRIX: &[(Endpoint, &[(Case, Refusal)])] = &[
    (Register, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        // Any device may register a new alliance, but only its own.
        (OtherAlliance, NOT_ITS_CREATOR), (Removed, NOT_ITS_CREATOR),
    ]),
    (PublishInvite, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
    (Redeem, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        // Any new device may redeem an unused invite: a device of another
        // alliance is refused once the invite is used.
        (OtherAlliance, USED),
        // A removed device asking again with the invite it joined with
        // (the answer would show it the membership since its removal).
        (Removed, REMOVED),
        (Expired, EXPIRED), (UsedByAnother, USED), (WrongToken, UNKNOWN_INVITE),
    ]),
    // A removed device is shown the log up to its removal (its own test,
    // below), so it can check it before it deletes what it holds.
    (FetchLog, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER),
    ]),
    (AppendLog, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
    (FetchCheckpoints, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
    (FetchBlobs, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
    (AppendBlobs, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
    (Withdraw, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
    (Events, &[
        (Unsigned, NOT_SIGNED), (BadSignature, BAD_SIGNATURE), (Replayed, REPLAYED),
        (Stale, STALE), (FromTheFuture, STALE),
        (OtherAlliance, NOT_A_MEMBER), (Removed, REMOVED),
    ]),
];

/// The cases every endpoint must have a row for.
const EVERY_ENDPOINT_CASES: [Case; 7] = [
    Unsigned,
    BadSignature,
    Replayed,
    Stale,
    FromTheFuture,
    OtherAlliance,
    Removed,
];

#[test]
fn the_matrix_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let db = Db::sqlite(&relay);
    run_matrix(&relay, &db);
}

#[test]
fn the_matrix_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create();
    let relay = Relay::start_postgres(dir.path(), &database.url);
    let db = Db::postgres(&database.url);
    run_matrix(&relay, &db);
}

#[test]
fn the_matrix_covers_every_endpoint_and_case() {
    assert_eq!(MATRIX.len(), 10, "one row per signed endpoint");
    for (endpoint, row) in MATRIX {
        for case in EVERY_ENDPOINT_CASES {
            if (*endpoint, case) == (FetchLog, Removed) {
                continue;
            }
            assert!(
                row.iter().any(|(c, _)| *c == case),
                "{endpoint:?} lacks {case:?}"
            );
        }
    }
}

fn run_matrix(relay: &Relay, db: &Db) {
    let mut world = World::new(relay);
    let mut checked = 0;
    for (endpoint, row) in MATRIX {
        for (case, refusal) in *row {
            world.check(db, *endpoint, *case, *refusal);
            checked += 1;
        }
    }
    assert_eq!(checked, 72);
}

/// A removed device fetching the log is shown it up to the entry that
/// removed it, and nothing written after; every other request of its is
/// refused (the matrix).
#[test]
fn a_removed_device_is_shown_the_log_up_to_its_removal_only() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    let mut world = World::new(&relay);
    // The steward goes on after the removal.
    let publish = world.fresh_invite().1;
    assert_eq!(send(&world.url, &publish).0, 201);
    catch_up(&mut world.owner, &world.url);
    let removed = world.removed.device_id();
    for from in [0, 1] {
        let request = world.removed.sign_request(
            "GET",
            api::paths::log_from(world.owner.profile().alliance, from),
            vec![],
            now(),
            &mut OsRng,
        );
        let (status, body) = send(&world.url, &request);
        assert_eq!(status, 200, "{body}");
        let page: api::LogPage = serde_json::from_value(body).unwrap();
        assert!(!page.more);
        let last = page.entries.last().unwrap().open().unwrap();
        assert!(
            matches!(&last.action, kith_core::membership::Action::Remove { devices, .. } if devices.contains(&removed)),
            "the last entry shown is its removal"
        );
        let shown = from as usize + page.entries.len();
        assert!(
            shown < world.owner.membership().entries().len(),
            "nothing after it"
        );
    }
}

/// A request served by one relay instance is refused as a replay by another
/// on the same database, both ways.
#[test]
fn a_replay_through_another_instance_is_refused() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let database = TestDatabase::create();
    let first = Relay::start_postgres(one.path(), &database.url);
    let second = Relay::start_postgres(two.path(), &database.url);
    let db = Db::postgres(&database.url);
    let owner = steward(&first.url());
    let alliance = owner.profile().alliance;
    for (served_by, replayed_to) in [(&first, &second), (&second, &first)] {
        let append = owner.sign_request(
            "POST",
            api::paths::blobs(alliance),
            append_body(),
            now(),
            &mut OsRng,
        );
        let fetch = owner.sign_request(
            "GET",
            api::paths::log_from(alliance, 0),
            vec![],
            now(),
            &mut OsRng,
        );
        for request in [append, fetch] {
            let (status, body) = send(&served_by.url(), &request);
            assert_eq!(status, 200, "{body}");
            let before = db.stored();
            expect(
                send(&replayed_to.url(), &request),
                REPLAYED,
                &format!("{} replayed to another instance", request.method),
            );
            assert_eq!(db.stored(), before, "the replay changed nothing");
        }
    }
    assert_eq!(db.stored().blobs, 2);
}

#[test]
fn a_replay_after_a_restart_is_refused_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path());
    let db = Db::sqlite(&relay);
    replay_after_restart(&mut relay, &db);
}

#[test]
fn a_replay_after_a_restart_is_refused_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create();
    let mut relay = Relay::start_postgres(dir.path(), &database.url);
    let db = Db::postgres(&database.url);
    replay_after_restart(&mut relay, &db);
}

fn replay_after_restart(relay: &mut Relay, db: &Db) {
    let owner = steward(&relay.url());
    let append = owner.sign_request(
        "POST",
        api::paths::blobs(owner.profile().alliance),
        append_body(),
        now(),
        &mut OsRng,
    );
    assert_eq!(send(&relay.url(), &append).0, 200);
    relay.restart();
    let before = db.stored();
    expect(
        send(&relay.url(), &append),
        REPLAYED,
        "replay after a restart",
    );
    assert_eq!(db.stored(), before, "the replay changed nothing");
}

/// Appends record their nonce in the same commit as their blobs (group
/// commit): copies of one append sent at once are stored once, and every
/// other copy is refused as a replay; an append refused before it reached
/// storage has its nonce spent all the same.
#[test]
fn copies_of_one_append_are_stored_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path());
    copies_of_one_append(&relay, &Db::sqlite(&relay));
}

#[test]
fn copies_of_one_append_are_stored_once_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let database = TestDatabase::create();
    let relay = Relay::start_postgres(dir.path(), &database.url);
    copies_of_one_append(&relay, &Db::postgres(&database.url));
}

fn copies_of_one_append(relay: &Relay, db: &Db) {
    let owner = steward(&relay.url());
    let alliance = owner.profile().alliance;
    let append = owner.sign_request(
        "POST",
        api::paths::blobs(alliance),
        append_body(),
        now(),
        &mut OsRng,
    );
    let before = db.stored();
    let answers: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let copies: Vec<_> = (0..6)
            .map(|_| scope.spawn(|| send(&relay.url(), &append)))
            .collect();
        copies.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let stored = answers.iter().filter(|(status, _)| *status == 200).count();
    assert_eq!(stored, 1, "one copy stored: {answers:?}");
    for answer in answers.into_iter().filter(|(status, _)| *status != 200) {
        expect(answer, REPLAYED, "a copy sent at the same time");
    }
    assert_eq!(db.stored().blobs, before.blobs + 1);

    // Refused before storage (not a blob list): its nonce is spent anyway.
    let refused = owner.sign_request(
        "POST",
        api::paths::blobs(alliance),
        b"not json".to_vec(),
        now(),
        &mut OsRng,
    );
    assert_eq!(send(&relay.url(), &refused).0, 400);
    expect(
        send(&relay.url(), &refused),
        REPLAYED,
        "a refused append sent again",
    );
    assert_eq!(db.stored().blobs, before.blobs + 1);
}

/// One relay with two alliances: A (the owner's, where a member was removed)
/// and B (a stranger's).
struct World {
    url: String,
    /// The steward of alliance A.
    owner: Client,
    /// The steward of alliance B.
    stranger: Client,
    /// A device that joined A and was removed.
    removed: Client,
    /// The invite it joined with.
    removed_invite: Invite,
}

/// Who signs a request made properly.
enum Signer {
    Owner,
    /// A new alliance's steward (registering it).
    Creator(Box<Client>),
    /// A new device (redeeming an invite).
    NewDevice(Box<DeviceKeys>),
}

/// A request made properly, and who made it.
struct Proper {
    signer: Signer,
    method: &'static str,
    path: String,
    body: Vec<u8>,
    /// The invite it redeems, if it does.
    invite: Option<InviteId>,
}

/// What a row sends: first (must succeed), the bad request, and after (must succeed).
struct Attempt {
    first: Option<HttpRequest>,
    bad: HttpRequest,
    after: Option<HttpRequest>,
    /// An invite made to look expired, to renew before `after`.
    renew: Option<InviteId>,
}

impl World {
    fn new(relay: &Relay) -> Self {
        let url = relay.url();
        let mut owner = steward(&url);
        let stranger = steward(&url);
        // A member joins and is removed.
        let (invite, publish) = owner
            .create_invite(Role::Member, None, HOUR_MS, now(), &mut OsRng)
            .unwrap();
        assert_eq!(send(&url, &publish).0, 201);
        let mut joining = Joining::new(&invite.link(), "Alex", &mut OsRng).unwrap();
        while let Some(request) = joining.next_request(now(), &mut OsRng) {
            let (status, body) = send(&url, &request);
            joining
                .receive(answer(status, &body), now(), &mut OsRng)
                .unwrap();
        }
        let (removed, _) = joining.finish(now(), &mut OsRng).unwrap();
        catch_up(&mut owner, &url);
        let (removal, _) = owner
            .remove_member(removed.profile().member, now(), &mut OsRng)
            .unwrap();
        assert_eq!(send(&url, &removal).0, 201);
        owner.change_accepted().unwrap();
        Self {
            url,
            owner,
            stranger,
            removed,
            removed_invite: invite,
        }
    }

    /// Sends one row of the matrix and checks the refusal.
    fn check(&mut self, db: &Db, endpoint: Endpoint, case: Case, refusal: Refusal) {
        let what = format!("{endpoint:?} / {case:?}");
        let attempt = self.attempt(db, endpoint, case);
        if let Some(first) = &attempt.first {
            let (status, body) = deliver(&self.url, first);
            assert!(status < 300, "{what}: the first request: {status} {body}");
        }
        let before = db.stored();
        expect(deliver(&self.url, &attempt.bad), refusal, &what);
        assert_eq!(db.stored(), before, "{what}: the refusal changed something");
        if let Some(invite) = attempt.renew {
            db.set_expiry(invite, now().millis() + HOUR_MS);
        }
        if let Some(after) = &attempt.after {
            let (status, body) = deliver(&self.url, after);
            assert!(status < 300, "{what}: made properly: {status} {body}");
        }
    }

    /// The requests of one row.
    fn attempt(&mut self, db: &Db, endpoint: Endpoint, case: Case) -> Attempt {
        let proper = self.proper(endpoint);
        let good = self.sign(&proper, now());
        let skew = api::MAX_CLOCK_SKEW_MS + 60_000;
        let mut renew = None;
        let (first, bad, after) = match case {
            Unsigned => {
                let mut bad = good.clone();
                bad.headers.retain(|(name, _)| !name.starts_with("kith-"));
                (None, bad, Some(good))
            }
            // The good request after it carries the same nonce: a request
            // refused for its signature must not use the nonce up.
            BadSignature => (None, with_bad_signature(&good), Some(good)),
            Replayed => (Some(good.clone()), good, None),
            Stale => {
                let stale = self.sign(&proper, Timestamp(now().millis() - skew));
                (None, stale, Some(good))
            }
            FromTheFuture => {
                let future = self.sign(&proper, Timestamp(now().millis() + skew));
                (None, future, Some(good))
            }
            // A redeem by another alliance's device, once the invite is used.
            OtherAlliance if endpoint == Redeem => {
                (Some(good), signed_as(&self.stranger, &proper), None)
            }
            OtherAlliance => (None, signed_as(&self.stranger, &proper), Some(good)),
            Removed if endpoint == Redeem => {
                let invite = &self.removed_invite;
                let again = self.removed.sign_request(
                    "POST",
                    api::paths::redeem(invite.invite),
                    redeem_body(invite),
                    now(),
                    &mut OsRng,
                );
                (None, again, Some(good))
            }
            Removed => (None, signed_as(&self.removed, &proper), Some(good)),
            Expired => {
                // The API refuses to publish an invite that has already
                // expired, and waiting for one to expire would slow the test
                // and depend on timing: the relay's database is told instead
                // that this one expired a minute ago (and renewed after).
                let invite = proper.invite.unwrap();
                db.set_expiry(invite, now().millis() - 60_000);
                renew = Some(invite);
                let after = self.sign(&proper, now());
                (None, good, Some(after))
            }
            UsedByAnother => {
                let another = DeviceKeys::generate(&mut OsRng);
                let bad = api::signed_request(
                    &another,
                    proper.method,
                    proper.path.clone(),
                    proper.body.clone(),
                    now(),
                    nonce(),
                );
                (Some(good), bad, None)
            }
            WrongToken => {
                let mut token = [0u8; 32];
                OsRng.fill_bytes(&mut token);
                let body = serde_json::to_vec(&api::RedeemInvite {
                    token: hex::encode(token),
                })
                .unwrap();
                let wrong = self.sign(&Proper { body, ..proper }, now());
                (None, wrong, Some(good))
            }
        };
        Attempt {
            first,
            bad,
            after,
            renew,
        }
    }

    /// A fresh request to `endpoint` that the relay accepts.
    fn proper(&mut self, endpoint: Endpoint) -> Proper {
        let alliance = self.owner.profile().alliance;
        let owner = |method, path, body| Proper {
            signer: Signer::Owner,
            method,
            path,
            body,
            invite: None,
        };
        match endpoint {
            Register => {
                let (creator, _) =
                    Client::create_alliance(new_alliance(&self.url), now(), &mut OsRng).unwrap();
                let request = creator.register_request(now(), &mut OsRng);
                Proper {
                    signer: Signer::Creator(Box::new(creator)),
                    method: "POST",
                    path: request.path,
                    body: request.body,
                    invite: None,
                }
            }
            PublishInvite => {
                let publish = self.fresh_invite().1;
                owner("POST", publish.path, publish.body)
            }
            Redeem => {
                let (invite, publish) = self.fresh_invite();
                assert_eq!(send(&self.url, &publish).0, 201);
                Proper {
                    signer: Signer::NewDevice(Box::new(DeviceKeys::generate(&mut OsRng))),
                    method: "POST",
                    path: api::paths::redeem(invite.invite),
                    body: redeem_body(&invite),
                    invite: Some(invite.invite),
                }
            }
            FetchLog => owner("GET", api::paths::log_from(alliance, 0), vec![]),
            AppendLog => {
                // An invite's entry, appended to the log by itself: a change
                // the steward may make that leaves the steward's device as it is.
                let publish = self.fresh_invite().1;
                let publish: PublishInvite = serde_json::from_slice(&publish.body).unwrap();
                let body = serde_json::to_vec(&AppendLog {
                    entries: vec![publish.entry],
                })
                .unwrap();
                owner("POST", api::paths::log(alliance), body)
            }
            FetchCheckpoints => {
                let cohort = self.owner.cohort().unwrap();
                owner(
                    "GET",
                    api::paths::checkpoints(alliance, &[(cohort, 0)]),
                    vec![],
                )
            }
            FetchBlobs => {
                let cohort = self.owner.cohort().unwrap();
                owner(
                    "GET",
                    api::paths::blobs_after(alliance, 0, 10, Some(&[(cohort, 0)])),
                    vec![],
                )
            }
            AppendBlobs => owner("POST", api::paths::blobs(alliance), append_body()),
            Withdraw => {
                let body = serde_json::to_vec(&api::Withdraw {
                    member: self.removed.profile().member,
                })
                .unwrap();
                owner("POST", api::paths::withdrawals(alliance), body)
            }
            Events => owner("GET", api::paths::events(alliance), vec![]),
        }
    }

    /// An invite the owner makes on the log as the relay has it now.
    fn fresh_invite(&mut self) -> (Invite, HttpRequest) {
        catch_up(&mut self.owner, &self.url);
        self.owner
            .create_invite(Role::Member, None, HOUR_MS, now(), &mut OsRng)
            .unwrap()
    }

    /// `proper`, signed by its own signer at `at`.
    fn sign(&self, proper: &Proper, at: Timestamp) -> HttpRequest {
        let (method, path, body) = (proper.method, proper.path.clone(), proper.body.clone());
        match &proper.signer {
            Signer::Owner => self.owner.sign_request(method, path, body, at, &mut OsRng),
            Signer::Creator(client) => client.sign_request(method, path, body, at, &mut OsRng),
            Signer::NewDevice(keys) => api::signed_request(keys, method, path, body, at, nonce()),
        }
    }
}

/// `proper`'s method, path and body, signed (properly) by another device.
fn signed_as(client: &Client, proper: &Proper) -> HttpRequest {
    client.sign_request(
        proper.method,
        proper.path.clone(),
        proper.body.clone(),
        now(),
        &mut OsRng,
    )
}

/// Sends `request`; for the live-updates stream, which never ends by
/// itself, reads only the status of a success (and the body of a refusal).
fn deliver(url: &str, request: &HttpRequest) -> (u16, Value) {
    if !request.path.ends_with("/events") {
        return send(url, request);
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut call = agent.get(format!("{url}{}", request.path));
    for (name, value) in &request.headers {
        call = call.header(*name, value);
    }
    let mut response = call.call().expect("the relay answers");
    let status = response.status().as_u16();
    if status == 200 {
        return (status, Value::Null);
    }
    let body = response.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Asserts the answer is `refusal`: status, error code and message.
fn expect(answer: (u16, Value), refusal: Refusal, what: &str) {
    let (status, body) = answer;
    let (want, code, says) = refusal;
    let mut shown = body.to_string();
    shown.truncate(300);
    assert_eq!(status, want, "{what}: {shown}");
    assert_eq!(body["error"], code, "{what}: {shown}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "{what}: the message {message:?} should say {says:?}"
    );
}

/// The same request with one bit of its signature changed.
fn with_bad_signature(request: &HttpRequest) -> HttpRequest {
    let mut bad = request.clone();
    let (_, signature) = bad
        .headers
        .iter_mut()
        .find(|(name, _)| *name == api::HEADER_SIGNATURE)
        .unwrap();
    let mut bytes = BASE64.decode(signature.as_bytes()).unwrap();
    bytes[0] ^= 1;
    *signature = BASE64.encode(bytes);
    bad
}

const HOUR_MS: u64 = 3_600_000;

fn new_alliance(relay: &str) -> NewAlliance {
    NewAlliance {
        name: "Test".into(),
        cohort: "Cohort".into(),
        relay: relay.into(),
        pseudonym: "Sam".into(),
        researchers: vec![],
        history: kith_core::History::FromJoin,
    }
}

/// A steward's device whose new alliance is registered.
fn steward(url: &str) -> Client {
    let (client, _) = Client::create_alliance(new_alliance(url), now(), &mut OsRng).unwrap();
    assert_eq!(
        send(url, &client.register_request(now(), &mut OsRng)).0,
        201
    );
    client
}

fn redeem_body(invite: &Invite) -> Vec<u8> {
    serde_json::to_vec(&api::RedeemInvite {
        token: invite.token_hex().to_string(),
    })
    .unwrap()
}

/// One new blob (the relay cannot tell its bytes from a real one's).
fn append_body() -> Vec<u8> {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    serde_json::to_vec(&AppendBlobs {
        blobs: vec![BlobRecord {
            id: BlobId(id),
            doc: DocId([1; 16]),
            scope: ScopeId([1; 16]),
            covers: None,
            seq: None,
            data: [kith_core::relay_rules::AGE_HEADER, &[7; 1024]].concat(),
        }],
    })
    .unwrap()
}

/// The relay's database, read beside it: what a refusal must leave alone.
struct Db {
    runtime: tokio::runtime::Runtime,
    pool: Pool,
}

enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Everything a request could change (request nonces aside: a refused
/// request may still have used its nonce).
#[derive(Debug, PartialEq, Eq)]
struct Stored {
    alliances: i64,
    log_entries: i64,
    devices: i64,
    active_devices: i64,
    blobs: i64,
    blob_bytes: i64,
    /// Each invite's id and the device that used it.
    invites: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

const COUNTS: &str = "SELECT \
     (SELECT COUNT(*) FROM alliances), \
     (SELECT COUNT(*) FROM log_entries), \
     (SELECT COUNT(*) FROM devices), \
     (SELECT COUNT(*) FROM devices WHERE active), \
     (SELECT COUNT(*) FROM blobs), \
     (SELECT CAST(COALESCE(SUM(LENGTH(data)), 0) AS BIGINT) FROM blobs)";
const INVITES: &str = "SELECT id, used_by FROM invites ORDER BY id";

impl Db {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn sqlite(relay: &Relay) -> Self {
        let runtime = Self::runtime();
        let url = format!(
            "sqlite://{}",
            relay.data_dir.join("relay.sqlite3").display()
        );
        let pool = runtime.block_on(sqlx::SqlitePool::connect(&url)).unwrap();
        Self {
            runtime,
            pool: Pool::Sqlite(pool),
        }
    }

    fn postgres(url: &str) -> Self {
        let runtime = Self::runtime();
        let pool = runtime.block_on(sqlx::PgPool::connect(url)).unwrap();
        Self {
            runtime,
            pool: Pool::Postgres(pool),
        }
    }

    fn stored(&self) -> Stored {
        self.runtime.block_on(async {
            let (counts, invites): (Vec<i64>, Vec<_>) = match &self.pool {
                Pool::Sqlite(pool) => {
                    let row = sqlx::query(COUNTS).fetch_one(pool).await.unwrap();
                    let counts = (0..6).map(|i| row.get(i)).collect();
                    let invites = sqlx::query(INVITES).fetch_all(pool).await.unwrap();
                    (
                        counts,
                        invites.iter().map(|r| (r.get(0), r.get(1))).collect(),
                    )
                }
                Pool::Postgres(pool) => {
                    let row = sqlx::query(COUNTS).fetch_one(pool).await.unwrap();
                    let counts = (0..6).map(|i| row.get(i)).collect();
                    let invites = sqlx::query(INVITES).fetch_all(pool).await.unwrap();
                    (
                        counts,
                        invites.iter().map(|r| (r.get(0), r.get(1))).collect(),
                    )
                }
            };
            Stored {
                alliances: counts[0],
                log_entries: counts[1],
                devices: counts[2],
                active_devices: counts[3],
                blobs: counts[4],
                blob_bytes: counts[5],
                invites,
            }
        })
    }

    /// Sets an invite's expiry (milliseconds since the epoch).
    fn set_expiry(&self, invite: InviteId, at: u64) {
        let at = i64::try_from(at).unwrap();
        let id = invite.0.to_vec();
        let changed = self.runtime.block_on(async {
            match &self.pool {
                Pool::Sqlite(pool) => sqlx::query("UPDATE invites SET expires_at = ? WHERE id = ?")
                    .bind(at)
                    .bind(id)
                    .execute(pool)
                    .await
                    .unwrap()
                    .rows_affected(),
                Pool::Postgres(pool) => {
                    sqlx::query("UPDATE invites SET expires_at = $1 WHERE id = $2")
                        .bind(at)
                        .bind(id)
                        .execute(pool)
                        .await
                        .unwrap()
                        .rows_affected()
                }
            }
        });
        assert_eq!(changed, 1, "the invite is in the relay's database");
    }
}
