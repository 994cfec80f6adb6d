//! Helpers for end-to-end tests: real relay processes, real `kith` commands.

#![forbid(unsafe_code)]

pub mod device;

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::Value;
use sqlx::{Row, SqlitePool};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Path to a workspace binary, built once per test run.
pub fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "-p", "kith", "-p", "kith-server"])
            .current_dir(root())
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building kith and kith-server failed");
    });
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    target.join("debug").join(name)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A real relay process with its own data folder and log file.
pub struct Relay {
    child: Option<Child>,
    /// The port it listens on.
    pub port: u16,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// Where its stdout and stderr go.
    pub log: PathBuf,
    web_dir: Option<PathBuf>,
    database: Option<String>,
    env: Vec<(String, String)>,
}

impl Relay {
    /// Starts a relay on SQLite in `dir` (data in `dir/relay-data`, log in `dir/relay.log`).
    pub fn start(dir: &Path) -> Self {
        Self::start_on(dir, None)
    }

    /// Starts a relay on the PostgreSQL database at `url` (log in `dir/relay.log`).
    pub fn start_postgres(dir: &Path, url: &str) -> Self {
        Self::start_on(dir, Some(url.to_owned()))
    }

    /// Starts a relay (on PostgreSQL when `database` is given) with more
    /// environment variables, e.g. `RUST_LOG=trace` or `KITH_LOG_FORMAT=json`.
    pub fn start_with_env(dir: &Path, database: Option<&str>, env: &[(&str, &str)]) -> Self {
        Self::start_with(dir, database.map(str::to_owned), env)
    }

    fn start_on(dir: &Path, database: Option<String>) -> Self {
        Self::start_with(dir, database, &[])
    }

    fn start_with(dir: &Path, database: Option<String>, env: &[(&str, &str)]) -> Self {
        let mut relay = Self {
            child: None,
            port: free_port(),
            data_dir: dir.join("relay-data"),
            log: dir.join("relay.log"),
            web_dir: None,
            database,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        };
        relay.restart();
        relay
    }

    /// The process id of the running relay.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The relay's base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it hard (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Where it keeps its SQLite database.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Starts it again on the same port and data folder; waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(bin("kith-server"));
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("RUST_LOG", "debug")
            // Tests create many alliances; registration tokens have their
            // own test (tests/tests/registration.rs), which turns this off.
            .env("KITH_OPEN_REGISTRATION", "true")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if let Some(web) = &self.web_dir {
            command.arg("--web-dir").arg(web);
        }
        if let Some(url) = &self.database {
            command.arg("--database").arg(url);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        self.child = Some(command.spawn().expect("kith-server starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while ureq::get(format!("{}/healthz", self.url())).call().is_err() {
            assert!(
                Instant::now() < deadline,
                "the relay did not start; see {}",
                self.log.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A fresh PostgreSQL database for one test, dropped when this is dropped.
/// The server is the machine's (KITH_TEST_POSTGRES, default
/// postgres://postgres@127.0.0.1:5432/test): a real database, never a mock.
pub struct TestDatabase {
    /// The new database's URL.
    pub url: String,
    admin: String,
    name: String,
}

impl TestDatabase {
    /// Creates a database with a unique name.
    pub fn create() -> Self {
        let admin = std::env::var("KITH_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let mut suffix = [0u8; 6];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut suffix);
        let name = format!("kith_test_{}", hex::encode(suffix));
        admin_sql(&admin, &format!("CREATE DATABASE {name}"));
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        Self {
            url: format!("{base}/{name}"),
            admin,
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        admin_sql(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on the admin database, on its own thread so it works
/// from inside an async test too.
fn admin_sql(admin: &str, sql: &str) {
    let (admin, sql) = (admin.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!(
                        "PostgreSQL at {admin} is needed for this test (set KITH_TEST_POSTGRES): {e}"
                    )
                });
            sqlx::query(&sql).execute(&mut conn).await.unwrap();
        });
    })
    .join()
    .expect("the database statement ran");
}

/// Runs `kith ARGS --json`; returns its output.
pub fn kith_raw(args: &[&str]) -> Output {
    Command::new(bin("kith"))
        .args(args)
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .expect("kith runs")
}

/// Runs `kith ARGS` as a person would (no `--json`), asserts success; returns stdout.
pub fn kith_plain(args: &[&str]) -> String {
    let out = Command::new(bin("kith"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("kith runs");
    assert!(
        out.status.success(),
        "kith {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `kith ARGS --json`, asserts success and that stdout is one JSON object.
pub fn kith(args: &[&str]) -> Value {
    let out = kith_raw(args);
    assert!(
        out.status.success(),
        "kith {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.trim().lines().count(),
        1,
        "one JSON line expected: {stdout}"
    );
    let value: Value = serde_json::from_str(&stdout).unwrap();
    assert!(value.is_object(), "a JSON object expected: {stdout}");
    value
}

/// The forms a secret string could take in a file: raw, hex, base64 at each
/// byte alignment (standard and URL-safe alphabets).
pub fn encodings_of(secret: &str) -> Vec<Vec<u8>> {
    encodings_of_bytes(secret.as_bytes())
}

/// [`encodings_of`] for bytes that need not be text (keys, ciphertext).
pub fn encodings_of_bytes(raw: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = vec![
        raw.to_vec(),
        hex::encode(raw).into_bytes(),
        hex::encode_upper(raw).into_bytes(),
    ];
    for offset in 0..3 {
        let mut shifted = vec![0u8; offset];
        shifted.extend_from_slice(raw);
        for engine in [
            &base64::engine::general_purpose::STANDARD,
            &base64::engine::general_purpose::URL_SAFE,
        ] {
            let text = engine.encode(&shifted);
            // Drop the characters the prefix and the padding influence.
            let start = (offset * 4).div_ceil(3) + 1;
            let core = &text[start..text.len() - 4];
            forms.push(core.as_bytes().to_vec());
        }
    }
    forms
}

/// Every file under `dir` whose bytes contain any of `needles`.
pub fn files_containing(dir: &Path, needles: &[Vec<u8>]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                stack.push(entry.unwrap().path());
            }
        } else if let Ok(bytes) = std::fs::read(&path)
            && needles
                .iter()
                .any(|n| bytes.windows(n.len()).any(|w| w == &n[..]))
        {
            hits.push(path);
        }
    }
    hits
}

/// Sends a request built by kith-core; returns the status and the body as JSON
/// (`Null` when the body is empty or not JSON).
pub fn send(base: &str, request: &kith_core::HttpRequest) -> (u16, Value) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let url = format!("{base}{}", request.path);
    let mut response = if request.method == "GET" {
        let mut b = agent.get(&url);
        for (k, v) in &request.headers {
            b = b.header(*k, v);
        }
        b.call()
    } else {
        let mut b = agent.post(&url);
        for (k, v) in &request.headers {
            b = b.header(*k, v);
        }
        b.send(&request.body[..])
    }
    .expect("the relay answers");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_vec().unwrap();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The relay's database, opened beside the running relay (WAL mode allows it).
pub struct RelayDb {
    runtime: tokio::runtime::Runtime,
    pool: SqlitePool,
}

/// One stored blob row.
#[derive(Clone)]
pub struct BlobRow {
    pub seq: i64,
    pub alliance_id: Vec<u8>,
    pub blob_id: Vec<u8>,
    pub doc_id: Vec<u8>,
    pub device_id: Vec<u8>,
    pub data: Vec<u8>,
    pub scope_id: Vec<u8>,
    pub batch_seq: Option<i64>,
}

impl RelayDb {
    /// Opens the database of `relay`.
    pub fn open(relay: &Relay) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let url = format!(
            "sqlite://{}",
            relay.data_dir.join("relay.sqlite3").display()
        );
        let pool = runtime.block_on(SqlitePool::connect(&url)).unwrap();
        Self { runtime, pool }
    }

    /// Runs one statement with byte and integer arguments (bytes first); it must change a row.
    pub fn exec(&self, sql: &str, binds: &[&[u8]], ints: &[i64]) {
        self.runtime.block_on(async {
            let mut query = sqlx::query(sql);
            for b in binds {
                query = query.bind(*b);
            }
            for i in ints {
                query = query.bind(*i);
            }
            let done = query.execute(&self.pool).await.unwrap();
            assert!(done.rows_affected() >= 1, "no row changed by {sql}");
        });
    }

    /// Every invite the relay holds: its id and its package (empty once
    /// deleted).
    pub fn invite_packages(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.runtime.block_on(async {
            sqlx::query("SELECT id, package FROM invites ORDER BY id")
                .fetch_all(&self.pool)
                .await
                .unwrap()
                .iter()
                .map(|row| (row.get(0), row.get(1)))
                .collect()
        })
    }

    /// The blobs a device appended, in the relay's order.
    pub fn blobs_of(&self, device_hex: &str) -> Vec<BlobRow> {
        let device = hex::decode(device_hex).unwrap();
        self.runtime.block_on(async {
            sqlx::query(
                "SELECT seq, alliance_id, blob_id, doc_id, device_id, data, scope_id, batch_seq \
                 FROM blobs WHERE device_id = ? ORDER BY seq",
            )
            .bind(device)
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| BlobRow {
                seq: r.get(0),
                alliance_id: r.get(1),
                blob_id: r.get(2),
                doc_id: r.get(3),
                device_id: r.get(4),
                data: r.get(5),
                scope_id: r.get(6),
                batch_seq: r.get(7),
            })
            .collect()
        })
    }

    /// Replaces a blob's bytes.
    pub fn set_data(&self, row: &BlobRow, data: &[u8]) {
        self.exec(
            "UPDATE blobs SET data = ? WHERE seq = ?",
            &[data],
            &[row.seq],
        );
    }

    /// Deletes a blob row.
    pub fn delete(&self, seq: i64) {
        self.exec("DELETE FROM blobs WHERE seq = ?", &[], &[seq]);
    }

    /// Stores `row` under `blob_id`, at position `seq` (or at the end).
    pub fn insert(&self, row: &BlobRow, blob_id: &[u8], seq: Option<i64>) {
        let sql = "INSERT INTO blobs \
                   (seq, alliance_id, blob_id, doc_id, device_id, data, scope_id, batch_seq) \
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
        self.runtime.block_on(async {
            sqlx::query(sql)
                .bind(seq)
                .bind(&row.alliance_id)
                .bind(blob_id)
                .bind(&row.doc_id)
                .bind(&row.device_id)
                .bind(&row.data)
                .bind(&row.scope_id)
                .bind(row.batch_seq)
                .execute(&self.pool)
                .await
                .unwrap();
        });
    }

    /// Moves a blob row to another position.
    pub fn move_to(&self, from: i64, to: i64) {
        self.exec("UPDATE blobs SET seq = ? WHERE seq = ?", &[], &[to, from]);
    }
}

impl RelayDb {
    /// Every blob the relay holds, in its order, as the core reads them.
    pub fn all_blobs(&self) -> Vec<kith_core::BlobRecord> {
        let id = |bytes: Vec<u8>| <[u8; 16]>::try_from(bytes).unwrap();
        let position = |n: Option<i64>| n.map(|n| u64::try_from(n).unwrap());
        self.runtime.block_on(async {
            sqlx::query(
                "SELECT blob_id, doc_id, scope_id, covers, batch_seq, data FROM blobs ORDER BY seq",
            )
            .fetch_all(&self.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|r| kith_core::BlobRecord {
                id: kith_core::BlobId(id(r.get(0))),
                doc: kith_core::DocId(id(r.get(1))),
                scope: kith_core::ScopeId(id(r.get(2))),
                covers: position(r.get(3)),
                seq: position(r.get(4)),
                data: r.get(5),
            })
            .collect()
        })
    }

    /// Stores `blob` as if `device` had appended it to `alliance` (ids in hex):
    /// what a relay replaying a device's write would do.
    pub fn insert_blob(&self, alliance: &str, device: &str, blob: &kith_core::BlobRecord) {
        let row = BlobRow {
            seq: 0,
            alliance_id: hex::decode(alliance).unwrap(),
            blob_id: blob.id.0.to_vec(),
            doc_id: blob.doc.0.to_vec(),
            device_id: hex::decode(device).unwrap(),
            data: blob.data.clone(),
            scope_id: blob.scope.0.to_vec(),
            batch_seq: blob.seq.map(|s| i64::try_from(s).unwrap()),
        };
        self.insert(&row, &row.blob_id, None);
    }
}

/// The blobs a `kith` data folder stores, as the core reads them.
pub fn stored_blobs(data_dir: &Path) -> Vec<kith_core::BlobRecord> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("blobs")) else {
        return Vec::new();
    };
    let mut blobs: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "blob"))
        .map(|p| kith_core::decode_blob(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    blobs.sort_by_key(|b| b.id);
    blobs
}

/// The device in a `kith` data folder, opened in this process as `kith`
/// opens it: its state, its replica (if it saved one) and the blobs it keeps.
pub fn open_device(data_dir: &Path) -> kith_core::Client {
    let state = std::fs::read(data_dir.join("state.kith")).unwrap();
    let replica = std::fs::read(data_dir.join("replica.kith")).ok();
    let (client, refused) =
        kith_core::Client::open(&state, replica.as_deref(), stored_blobs(data_dir)).unwrap();
    assert_eq!(refused, 0, "every stored blob passes its checks");
    client
}

/// Copies every blob file of one data folder into another (as if the relay
/// had served them all): for checking what a device can open.
pub fn copy_blobs(from: &Path, to: &Path) {
    let target = to.join("blobs");
    std::fs::create_dir_all(&target).unwrap();
    for entry in std::fs::read_dir(from.join("blobs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "blob") {
            std::fs::copy(&path, target.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// `kith invite` from `steward` (with `extra` flags), then `kith join` into
/// `dir` as `name`; returns the join's JSON output.
pub fn invite_and_join(steward: &str, dir: &str, name: &str, extra: &[&str]) -> Value {
    let mut args = vec!["invite", "--data-dir", steward];
    args.extend_from_slice(extra);
    let invite = kith(&args);
    kith(&[
        "join",
        "--data-dir",
        dir,
        "--invite",
        invite["invite"].as_str().unwrap(),
        "--name",
        name,
    ])
}

/// An alliance for end-to-end tests: "Relations study" with the cohort
/// "Parents", created through `kith` by the steward Sam, whose research team
/// holds the age key at `key`; the researcher's device ("Dr Lee") has joined.
pub struct Study {
    base: PathBuf,
    /// The steward's data folder.
    pub steward: String,
    /// The researcher's data folder.
    pub researcher: String,
    /// The research team's age identity file.
    pub key: String,
}

impl Study {
    /// Creates it on `relay`, with every folder under `base`. Parents is
    /// read from join on (the default).
    pub fn start(base: &Path, relay: &Relay) -> Self {
        Self::start_with(base, relay, "from-join")
    }

    /// The same, with Parents keeping its whole history for members who
    /// join later.
    pub fn start_keeping_history(base: &Path, relay: &Relay) -> Self {
        Self::start_with(base, relay, "all")
    }

    fn start_with(base: &Path, relay: &Relay, history: &str) -> Self {
        let dir = |name: &str| base.join(name).to_str().unwrap().to_owned();
        let key = dir("lee.agekey");
        let recipient = kith(&["keygen", "--out", &key])["recipient"]
            .as_str()
            .unwrap()
            .to_owned();
        let steward = dir("steward");
        kith(&[
            "init",
            "--data-dir",
            &steward,
            "--relay",
            &relay.url(),
            "--alliance",
            "Relations study",
            "--cohort",
            "Parents",
            "--name",
            "Sam",
            "--researcher",
            &recipient,
            "--history",
            history,
        ]);
        let researcher = dir("lee");
        invite_and_join(&steward, &researcher, "Dr Lee", &["--role", "researcher"]);
        Self {
            base: base.to_owned(),
            steward,
            researcher,
            key,
        }
    }

    /// A folder under the base folder, as text for `kith`'s arguments.
    pub fn dir(&self, name: &str) -> String {
        self.base.join(name).to_str().unwrap().to_owned()
    }

    /// A new member of the steward's cohort, joined into `dir(name)`; the
    /// join's JSON output.
    pub fn member(&self, name: &str, folder: &str) -> Value {
        invite_and_join(&self.steward, &self.dir(folder), name, &[])
    }

    /// The researcher's export (JSON), decrypted with the team's key.
    pub fn export(&self) -> Value {
        kith(&[
            "export",
            "--data-dir",
            &self.researcher,
            "--identity",
            &self.key,
            "--format",
            "json",
        ])
    }
}

/// Brings a device's view of the membership and blobs up to date, as a sync
/// does (one run, in this process).
pub fn catch_up(device: &mut kith_core::Client, url: &str) {
    device.sync_start();
    while let Some(request) = device.sync_next(device::now(), &mut rand_core::OsRng) {
        let (status, body) = send(url, &request);
        let step = device
            .sync_receive(answer(status, &body), device::now(), &mut rand_core::OsRng)
            .unwrap();
        if step.finished.is_some() {
            break;
        }
    }
}

/// The answer `send` gave, as the core takes it.
pub fn answer(status: u16, body: &Value) -> kith_core::HttpResponse {
    kith_core::HttpResponse {
        status,
        body: serde_json::to_vec(body).unwrap(),
    }
}

/// What `kith list` shows in the data folder `dir`: its texts, sorted.
pub fn shown(dir: &str) -> Vec<String> {
    texts_of(&kith(&["list", "--data-dir", dir]))
}

/// The (author, text) pairs of `kith list` or `kith export` output, sorted.
pub fn authored_texts_of(output: &Value) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = output["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["author"].as_str().unwrap().to_owned(),
                c["text"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

/// The texts of `kith list` or `kith export` output, sorted.
pub fn texts_of(output: &Value) -> Vec<String> {
    let mut texts: Vec<String> = output["contributions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect();
    texts.sort();
    texts
}
