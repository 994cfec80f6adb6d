//! The relay's log never holds a secret, even at `RUST_LOG=trace`: a real
//! relay (on SQLite with JSON logs, then on PostgreSQL with text logs) goes
//! through the whole CLI workflow (alliance, invites, joins, writing in both
//! scopes, sync, a linked device, a removal, refused requests), then its log
//! is searched for every secret in every encoding: the texts, invite links,
//! codes, tokens and identities, request signatures and nonces, the
//! ciphertext the relay stored, every device's secret keys, the research
//! team's age identity, and the PostgreSQL password.

use std::path::Path;

use kith_core::{AgeIdentity, Invite};
use kith_tests::{Relay, TestDatabase, encodings_of_bytes, files_containing, kith, kith_raw, send};
use serde_json::Value;

/// A secret, named for the failure message.
struct Secret {
    name: String,
    bytes: Vec<u8>,
}

#[derive(Default)]
struct Secrets(Vec<Secret>);

impl Secrets {
    fn add(&mut self, name: impl Into<String>, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref().to_vec();
        assert!(bytes.len() >= 8, "too short to search for safely");
        self.0.push(Secret {
            name: name.into(),
            bytes,
        });
    }

    fn text(&mut self, name: impl Into<String>, text: &str) {
        self.add(name, text.as_bytes());
    }

    /// An invite link or code: itself, its code, its token as sent to the
    /// relay, and its age identity.
    fn invite(&mut self, name: &str, link: &str) {
        self.text(format!("{name} (as given)"), link);
        let code = &link[link.find("kith2").unwrap()..];
        self.text(format!("{name} code"), code);
        let invite = Invite::parse(link).unwrap();
        self.text(format!("{name} token"), &invite.token_hex());
        self.text(
            format!("{name} identity"),
            &invite.identity().export_secret(),
        );
        self.add(
            format!("{name} identity bytes"),
            *invite.identity().secret_bytes(),
        );
    }

    /// The names of the secrets found in `file`.
    fn found_in(&self, file: &Path) -> Vec<String> {
        self.0
            .iter()
            .filter(|s| !files_containing(file, &forms(&s.bytes)).is_empty())
            .map(|s| s.name.clone())
            .collect()
    }
}

/// Every encoding [`encodings_of_bytes`] gives, plus the two ways Rust's
/// `Debug` shows bytes (`b"..."` escapes and `[1, 2, ...]`), which a
/// dependency logging a body at trace level would use.
fn forms(secret: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = encodings_of_bytes(secret);
    forms.push(secret.escape_ascii().to_string().into_bytes());
    let list = format!("{secret:?}");
    forms.push(list.trim_matches(['[', ']']).as_bytes().to_vec());
    forms
}

fn random_hex() -> String {
    let mut bytes = [0u8; 12];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut bytes);
    hex::encode(bytes)
}

/// A device's secret keys, read from its `state.kith`: its signing seed and
/// age identity, the invite identity it joined with, and every epoch key.
/// The state is `kith/state/v4\n` then postcard (see core/src/state.rs).
fn device_secrets(dir: &Path, name: &str, secrets: &mut Secrets) {
    let state = std::fs::read(dir.join("state.kith")).unwrap();
    let mut at = state
        .strip_prefix(b"kith/state/v4\n".as_slice())
        .expect("the state format changed: update device_secrets in tests/tests/logs.rs");
    fn varint(at: &mut &[u8]) -> usize {
        let mut value = 0usize;
        for shift in (0..).step_by(7) {
            let byte = at[0];
            *at = &at[1..];
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
        }
        unreachable!()
    }
    fn bytes<'a>(at: &mut &'a [u8]) -> &'a [u8] {
        let len = varint(at);
        let (taken, rest) = at.split_at(len);
        *at = rest;
        taken
    }
    // Profile: alliance id, three strings, member id.
    at = &at[16..];
    for _ in 0..3 {
        bytes(&mut at);
    }
    at = &at[16..];
    let device = bytes(&mut at);
    assert_eq!(
        device.len(),
        64,
        "device keys: signing seed, then age scalar"
    );
    secrets.add(format!("{name}'s signing key"), &device[..32]);
    let age: &[u8; 32] = device[32..].try_into().unwrap();
    secrets.add(format!("{name}'s age scalar"), age);
    secrets.text(
        format!("{name}'s age identity"),
        &AgeIdentity::from_secret_bytes(age).export_secret(),
    );
    let has_invite = at[0] == 1;
    at = &at[1..];
    if has_invite {
        secrets.add(format!("{name}'s invite identity"), bytes(&mut at));
    }
    // Epoch keys, then keys held for invites: (scope, epoch, secret).
    for list in ["epoch key", "custody key"] {
        for i in 0..varint(&mut at) {
            at = &at[16..];
            varint(&mut at);
            let key = bytes(&mut at);
            assert_eq!(key.len(), 32, "an epoch key is an age scalar");
            secrets.add(format!("{name}'s {list} {i}"), key);
            let key: &[u8; 32] = key.try_into().unwrap();
            secrets.text(
                format!("{name}'s {list} {i} as an identity"),
                &AgeIdentity::from_secret_bytes(key).export_secret(),
            );
        }
    }
}

/// Where the relay keeps its data, to read what it stored.
enum Store<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

/// Every blob's and invite package's bytes as the relay stored them.
fn stored_ciphertext(store: &Store) -> Vec<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Packages of used invites are deleted (empty): only those still held.
    const SQL: [&str; 2] = [
        "SELECT data FROM blobs",
        "SELECT package FROM invites WHERE length(package) > 0",
    ];
    runtime.block_on(async {
        let mut all = Vec::new();
        match store {
            Store::Sqlite(dir) => {
                let url = format!("sqlite://{}", dir.join("relay.sqlite3").display());
                let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
                for sql in SQL {
                    all.extend(
                        sqlx::query_scalar::<_, Vec<u8>>(sql)
                            .fetch_all(&pool)
                            .await
                            .unwrap(),
                    );
                }
            }
            Store::Postgres(url) => {
                let pool = sqlx::PgPool::connect(url).await.unwrap();
                for sql in SQL {
                    all.extend(
                        sqlx::query_scalar::<_, Vec<u8>>(sql)
                            .fetch_all(&pool)
                            .await
                            .unwrap(),
                    );
                }
            }
        }
        all
    })
}

/// Requests this test signs itself (so it knows their signatures and
/// nonces): one accepted, the same one replayed, one with a broken signature.
fn signed_requests(relay: &Relay, steward: &Path, secrets: &mut Secrets) {
    let client = kith_tests::open_device(steward);
    let path = kith_core::api::paths::log_from(client.profile().alliance, 0);
    let now = kith_tests::device::now();
    let request = client.sign_request("GET", path, Vec::new(), now, &mut rand_core::OsRng);
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(k, _)| *k == name)
            .unwrap()
            .1
            .clone()
    };
    secrets.text("a request signature", &header("kith-signature"));
    secrets.text("a request nonce", &header("kith-nonce"));
    assert_eq!(send(&relay.url(), &request).0, 200);
    let (status, body) = send(&relay.url(), &request);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthenticated"))
    );

    let mut forged = client.sign_request(
        "GET",
        request.path.clone(),
        Vec::new(),
        now,
        &mut rand_core::OsRng,
    );
    for (name, value) in &mut forged.headers {
        match *name {
            "kith-nonce" => secrets.text("a refused request's nonce", value),
            // A valid-looking signature, of another request.
            "kith-signature" => *value = header("kith-signature"),
            _ => {}
        }
    }
    assert_eq!(send(&relay.url(), &forged).0, 401);
}

/// `kith invite` from `steward`, then `kith join`; returns the link.
fn join(secrets: &mut Secrets, steward: &str, who: &str, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["invite", "--data-dir", steward];
    args.extend_from_slice(extra);
    let link = kith(&args)["invite"].as_str().unwrap().to_owned();
    secrets.invite(&format!("{name}'s invite link"), &link);
    kith(&["join", "--data-dir", who, "--invite", &link, "--name", name]);
    link
}

/// `kith contribute` of a new secret text.
fn write(secrets: &mut Secrets, who: &str, label: &str, scope: &str) {
    let text = format!("{label} wrote this secret text {}", random_hex());
    secrets.text(format!("{label}'s text ({scope})"), &text);
    kith(&[
        "contribute",
        "--data-dir",
        who,
        "--text",
        &text,
        "--scope",
        scope,
    ]);
}

fn dir(base: &Path, name: &str) -> String {
    base.join(name).to_str().unwrap().to_owned()
}

/// The whole workflow against `relay`; returns every secret it made.
fn workflow(base: &Path, relay: &mut Relay) -> Secrets {
    let mut secrets = Secrets::default();
    let (steward, alex, phone, blake, lee) = (
        dir(base, "steward"),
        dir(base, "alex"),
        dir(base, "alex-phone"),
        dir(base, "blake"),
        dir(base, "lee"),
    );
    let key = dir(base, "lee.agekey");
    let recipient = kith(&["keygen", "--out", &key])["recipient"]
        .as_str()
        .unwrap()
        .to_owned();
    let identity = std::fs::read_to_string(&key).unwrap();
    let identity = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
        .unwrap();
    secrets.text("the research team's age identity", identity);

    // Names are sealed to the alliance: the relay never sees them either.
    let (alliance, cohort, pseudonym) = (
        format!("Alliance {}", random_hex()),
        format!("Cohort {}", random_hex()),
        format!("Steward {}", random_hex()),
    );
    secrets.text("the alliance's name", &alliance);
    secrets.text("the cohort's name", &cohort);
    secrets.text("the steward's pseudonym", &pseudonym);
    kith(&[
        "init",
        "--data-dir",
        &steward,
        "--relay",
        &relay.url(),
        "--alliance",
        &alliance,
        "--cohort",
        &cohort,
        "--name",
        &pseudonym,
        "--researcher",
        &recipient,
    ]);

    let alex_link = join(&mut secrets, &steward, &alex, "Alex", &[]);
    join(&mut secrets, &steward, &blake, "Blake", &[]);
    join(
        &mut secrets,
        &steward,
        &lee,
        "Dr Lee",
        &["--role", "researcher"],
    );
    write(&mut secrets, &alex, "Alex", "cohort");
    write(&mut secrets, &alex, "Alex", "research");
    write(&mut secrets, &steward, "the steward", "cohort");
    write(&mut secrets, &blake, "Blake", "cohort");
    for who in [&alex, &steward, &blake, &lee] {
        kith(&["sync", "--data-dir", who]);
    }

    // A second device for Alex, from a one-time code.
    let code = kith(&["device", "link", "--data-dir", &alex])["code"]
        .as_str()
        .unwrap()
        .to_owned();
    secrets.invite("Alex's device link code", &code);
    kith(&["device", "add", "--data-dir", &phone, "--code", &code]);
    write(&mut secrets, &phone, "Alex's phone", "cohort");
    kith(&["sync", "--data-dir", &phone]);

    // Blake is removed; Blake's device is refused from then on.
    kith(&["sync", "--data-dir", &steward]);
    kith(&[
        "member",
        "remove",
        "--data-dir",
        &steward,
        "--member",
        "Blake",
    ]);
    write(&mut secrets, &blake, "Blake (removed)", "cohort");
    // Read before its sync: then it learns it was removed and deletes them.
    device_secrets(Path::new(&blake), "Blake", &mut secrets);
    let refused = kith_raw(&["sync", "--data-dir", &blake]);
    assert!(!refused.status.success(), "a removed device synced");
    assert!(!Path::new(&blake).join("state.kith").exists());
    write(
        &mut secrets,
        &steward,
        "the steward after the removal",
        "cohort",
    );
    kith(&["sync", "--data-dir", &steward]);

    // A used invite is refused.
    let used = kith_raw(&[
        "join",
        "--data-dir",
        &dir(base, "intruder"),
        "--invite",
        &alex_link,
        "--name",
        "Intruder",
    ]);
    assert!(!used.status.success(), "an invite worked twice");
    signed_requests(relay, Path::new(&steward), &mut secrets);

    // Everyone syncs; the researcher exports, so the texts did travel.
    for who in [&alex, &phone, &steward, &lee] {
        kith(&["sync", "--data-dir", who]);
    }
    let export = kith(&[
        "export",
        "--data-dir",
        &lee,
        "--identity",
        &key,
        "--format",
        "json",
    ]);
    // Six: Blake's writing after the removal never reached the relay.
    assert_eq!(export["contributions"].as_array().unwrap().len(), 6);

    for (who, name) in [
        (&steward, "the steward"),
        (&alex, "Alex"),
        (&phone, "Alex's phone"),
        (&lee, "the researcher"),
    ] {
        device_secrets(Path::new(who), name, &mut secrets);
    }
    secrets
}

/// Adds windows of each stored blob and invite package (after the age
/// header: the encrypted payload) to `secrets`; checks the search finds
/// them where they are stored, when that is a file.
fn add_ciphertext(store: &Store, secrets: &mut Secrets) {
    let stored = stored_ciphertext(store);
    assert!(stored.len() >= 10, "{} blobs and packages", stored.len());
    for (i, data) in stored.iter().enumerate() {
        let middle = data.len() / 2;
        let window = &data[middle..middle + 48];
        if let Store::Sqlite(dir) = store {
            assert!(
                !files_containing(dir, &forms(window)).is_empty(),
                "the search does not find stored ciphertext where it is stored"
            );
        }
        secrets.add(format!("stored ciphertext {i}"), window);
    }
}

fn assert_nothing_found(log: &Path, secrets: &Secrets) {
    let found = secrets.found_in(log);
    assert!(
        found.is_empty(),
        "secrets in the relay's log {}: {found:?}",
        log.display()
    );
}

#[test]
fn the_relay_log_holds_no_secret_at_trace_level_on_sqlite_in_json() {
    let base = tempfile::tempdir().unwrap();
    let mut relay = Relay::start_with_env(
        base.path(),
        None,
        &[("RUST_LOG", "trace"), ("KITH_LOG_FORMAT", "json")],
    );
    let mut secrets = workflow(base.path(), &mut relay);
    relay.kill();
    add_ciphertext(&Store::Sqlite(&relay.data_dir), &mut secrets);
    assert!(secrets.0.len() > 60, "{} secrets", secrets.0.len());

    let log = std::fs::read_to_string(&relay.log).unwrap();
    // It logged at trace level, every line as a JSON object, and the
    // requests themselves (by route) are there.
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|l| l["fields"]["filter"] == "trace"),
        "the relay did not log at trace level"
    );
    // Dependencies' own verbose lines are there too (sqlx's statements).
    assert!(
        lines.iter().any(|l| l["target"] == "sqlx::query"),
        "no sqlx line"
    );
    assert!(log.contains("/v1/alliances/"), "no request logged");
    assert!(log.contains("request refused"), "no refusal logged");
    assert_nothing_found(&relay.log, &secrets);
}

#[test]
fn the_relay_log_holds_no_secret_on_postgres_nor_its_password() {
    let base = tempfile::tempdir().unwrap();
    let db = TestDatabase::create();
    // The test server trusts local connections, so any password is accepted:
    // the relay must still never repeat it.
    let password = format!("pw-{}", random_hex());
    let (scheme, rest) = db.url.split_once("://").unwrap();
    let (user, host) = rest.split_once('@').unwrap();
    assert!(
        !user.contains(':'),
        "KITH_TEST_POSTGRES already has a password"
    );
    let url = format!("{scheme}://{user}:{password}@{host}");
    let mut relay = Relay::start_with_env(base.path(), Some(&url), &[("RUST_LOG", "trace")]);
    let mut secrets = workflow(base.path(), &mut relay);
    add_ciphertext(&Store::Postgres(&url), &mut secrets);
    secrets.text("the database password", &password);

    // The database goes away: not ready (a clear JSON error), still alive;
    // and the errors logged on the way name no password.
    drop(db);
    let (status, body) = get(&relay, "/readyz");
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"], "not_ready");
    assert_eq!(get(&relay, "/healthz").0, 200);
    relay.kill();

    let log = std::fs::read_to_string(&relay.log).unwrap();
    assert!(
        log.contains("logging filter=trace"),
        "the relay did not log at trace level"
    );
    assert!(log.contains("sqlx::query"), "no sqlx line");
    assert!(
        log.contains("not ready"),
        "the failed readiness check was not logged"
    );
    assert_nothing_found(&relay.log, &secrets);
}

fn get(relay: &Relay, path: &str) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(format!("{}{path}", relay.url())).call().unwrap();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}
