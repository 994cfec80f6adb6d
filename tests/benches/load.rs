//! Relay load: N devices at once, each appending one blob (as a phone does
//! after writing one reflection) and then fetching what came after its
//! cursor, in a loop, against the release relay on SQLite and on PostgreSQL,
//! and against a hello-world axum server (`tests/examples/hello.rs`) driven
//! the same way, measured in the same run.
//!
//! `cargo bench -p kith-tests --bench load`
//!
//! Environment: `KITH_LOAD_SECONDS` (per point, default 10), `KITH_LOAD_DEVICES`
//! (default `1,100,1000`), `KITH_TEST_POSTGRES` (the PostgreSQL server, as
//! for the tests). Prints a Markdown table; a run of at least 5 s per point
//! with the default device counts also writes it into docs/BENCHMARKS.md
//! ("Relay load"), so a 1 s smoke run leaves the document alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use kith_core::api::{self, AppendBlobs, BlobPage, BlobRecord, HttpRequest};
use kith_core::{AllianceId, BlobId, Client, DocId, NewAlliance, ScopeId};
use kith_tests::device::now;
use kith_tests::{TestDatabase, free_port, root};
use rand_core::{OsRng, RngCore};
use tokio::time::Instant;

/// Ciphertext bytes per blob: an age file holding one padded contribution
/// (1024-byte minimum plaintext) is about this long (see "Padding").
const BLOB_BYTES: usize = 1324;
const DEFAULT_DEVICES: &str = "1,100,1000";

fn main() {
    let seconds: f64 = env_or("KITH_LOAD_SECONDS", "10")
        .parse()
        .expect("KITH_LOAD_SECONDS: seconds");
    let counts_text = env_or("KITH_LOAD_DEVICES", DEFAULT_DEVICES);
    let counts: Vec<usize> = counts_text
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("KITH_LOAD_DEVICES: numbers, e.g. 1,100,1000")
        })
        .collect();
    let most = *counts.iter().max().unwrap();
    let window = Duration::from_secs_f64(seconds);

    cargo(&["build", "--release", "-p", "kith-server"]);
    cargo(&[
        "build",
        "--release",
        "-p",
        "kith-tests",
        "--example",
        "hello",
    ]);
    let release = target_dir().join("release");
    let machine = Machine::now();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    eprintln!("making {most} devices (each the steward of its own alliance)...");
    let mut devices: Vec<Sim> = (0..most).map(|_| Sim::new()).collect();

    let mut rows = Vec::new();
    let mut memory = Vec::new();

    // The baseline first: no registration, nothing stored.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let hello = Server::start(
        Command::new(release.join("examples/hello")).arg(format!("127.0.0.1:{port}")),
        port,
        dir.path(),
    );
    let mut baseline = BTreeMap::new();
    for &n in &counts {
        let point = runtime.block_on(run_point(&mut devices, n, hello.addr, window));
        eprintln!("hello n={n}: {point:?}");
        baseline.insert(n, point.appends_per_second());
        rows.push(("hello world (axum)", n, point));
    }
    memory.push(("hello world (axum)", hello.peak_memory_kib()));
    hello.stop();

    let db = TestDatabase::create();
    let postgres = runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let version: String = sqlx::query_scalar("SHOW server_version")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        // "15.20 (Debian 15.20-0+deb12u1)": the number is enough.
        version.split(' ').next().unwrap_or_default().to_owned()
    });
    for (backend, database) in [
        ("relay, SQLite", None),
        ("relay, PostgreSQL", Some(&db.url)),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut command = Command::new(release.join("kith-server"));
        command
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(dir.path().join("relay-data"))
            .arg("--web-dir")
            .arg(dir.path().join("no-web"))
            // The relay's default level, as deployed.
            .env("RUST_LOG", "info")
            // No per-device rate limit: one simulated device sends hundreds
            // of requests a second, far beyond any phone, and would be
            // answered 429 after its burst. 429s are still counted.
            .env("KITH_DEVICE_BURST", "0")
            // The bench registers its own alliances.
            .env("KITH_OPEN_REGISTRATION", "true");
        if let Some(url) = database {
            command.arg("--database").arg(url);
        }
        let relay = Server::start(&mut command, port, dir.path());
        let started = Instant::now();
        runtime.block_on(register(&mut devices, relay.addr));
        eprintln!(
            "{backend}: registered {most} alliances in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for device in devices.iter_mut() {
            device.cursor = 0;
        }
        for &n in &counts {
            let point = runtime.block_on(run_point(&mut devices, n, relay.addr, window));
            eprintln!("{backend} n={n}: {point:?}");
            rows.push((backend, n, point));
        }
        memory.push((backend, relay.peak_memory_kib()));
        relay.stop();
    }
    drop(db);

    let summary = summary(&rows, &baseline);
    let table = format!("{summary}\n\n{}", table(&rows, &baseline, &memory));
    println!("{table}");
    if seconds >= 5.0 && counts_text == DEFAULT_DEVICES {
        let section = section(&machine, seconds, most, &postgres, &table);
        let path = root().join("docs/BENCHMARKS.md");
        let doc = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, replace_section(&doc, "Relay load", &section)).unwrap();
        eprintln!("wrote the \"Relay load\" section of {}", path.display());
    } else {
        eprintln!("a short or partial run: docs/BENCHMARKS.md left alone");
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

fn cargo(args: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(args)
        .current_dir(root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo {args:?} failed");
}

fn output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// What the figures were measured on.
struct Machine {
    date: String,
    commit: String,
    cpu: String,
    cores: String,
    load: String,
    rustc: String,
}

impl Machine {
    fn now() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|l| l.split_once(':'))
            .map_or_else(|| "unknown CPU".into(), |(_, m)| m.trim().to_owned());
        Self {
            date: output("date", &["-u", "+%Y-%m-%d"]),
            commit: {
                let head = output("git", &["rev-parse", "--short", "HEAD"]);
                let dirty = output("git", &["status", "--porcelain", "--", "core", "server"]);
                if dirty.is_empty() {
                    format!("`{head}`")
                } else {
                    format!(
                        "`{head}` with uncommitted changes to core/ or server/ in the working tree"
                    )
                }
            },
            cpu,
            cores: output("nproc", &[]),
            load: load_average(),
            rustc: output("rustc", &["--version"]),
        }
    }
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    load.split(' ').take(3).collect::<Vec<_>>().join(" ")
}

/// A server process (the relay or the baseline) this bench started.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(command: &mut Command, port: u16, dir: &Path) -> Self {
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("the server starts");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "the server did not start; see {}",
                dir.join("server.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self { child, addr }
    }

    /// VmHWM: the most resident memory the process ever had.
    fn peak_memory_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// SIGTERM (the relay finishes what is in flight), then wait.
    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// One simulated device: a real kith-core client (it signs every request)
/// that appends one blob at a time and fetches after its cursor.
struct Sim {
    client: Client,
    alliance: AllianceId,
    scope: ScopeId,
    doc: DocId,
    seq: u64,
    cursor: u64,
}

impl Sim {
    fn new() -> Self {
        let (client, _) = Client::create_alliance(
            NewAlliance {
                name: "Load".into(),
                cohort: "Cohort".into(),
                relay: "http://127.0.0.1".into(),
                pseudonym: "Phone".into(),
                researchers: vec![],
                history: kith_core::History::Whole,
            },
            now(),
            &mut OsRng,
        )
        .unwrap();
        let mut doc = [0u8; 16];
        OsRng.fill_bytes(&mut doc);
        Self {
            alliance: client.profile().alliance,
            scope: client.cohort().unwrap(),
            client,
            doc: DocId(doc),
            seq: 0,
            cursor: 0,
        }
    }

    fn append(&mut self) -> HttpRequest {
        self.seq += 1;
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let mut data = vec![0u8; BLOB_BYTES];
        OsRng.fill_bytes(&mut data);
        let header = kith_core::relay_rules::AGE_HEADER;
        data[..header.len()].copy_from_slice(header);
        let body = serde_json::to_vec(&AppendBlobs {
            blobs: vec![BlobRecord {
                id: BlobId(id),
                doc: self.doc,
                scope: self.scope,
                covers: None,
                seq: Some(self.seq),
                data,
            }],
        })
        .unwrap();
        self.client.sign_request(
            "POST",
            api::paths::blobs(self.alliance),
            body,
            now(),
            &mut OsRng,
        )
    }

    fn fetch(&self) -> HttpRequest {
        let path = api::paths::blobs_after(
            self.alliance,
            self.cursor,
            api::MAX_BLOBS_PER_FETCH,
            Some(&[(self.scope, 0)]),
        );
        self.client
            .sign_request("GET", path, Vec::new(), now(), &mut OsRng)
    }
}

/// One keep-alive HTTP/1.1 connection per device, as each phone has its own.
struct Connection {
    addr: SocketAddr,
    sender: Option<http1::SendRequest<Full<Bytes>>>,
}

impl Connection {
    fn new(addr: SocketAddr) -> Self {
        Self { addr, sender: None }
    }

    async fn sender(&mut self) -> Result<&mut http1::SendRequest<Full<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(self.addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).unwrap();
            let (sender, connection) = http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().unwrap())
    }

    /// Sends one request; the status and body, or what went wrong.
    async fn send(&mut self, request: HttpRequest) -> Result<(u16, Bytes), String> {
        let mut builder = hyper::Request::builder()
            .method(request.method)
            .uri(&request.path)
            .header("host", self.addr.to_string());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let request = builder.body(Full::new(Bytes::from(request.body))).unwrap();
        let sender = self.sender().await?;
        let result = async {
            sender.ready().await?;
            let response = sender.send_request(request).await?;
            let status = response.status().as_u16();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        result.map_err(|e| {
            self.sender = None;
            format!("{e}")
        })
    }
}

/// What the devices saw during one point.
#[derive(Default)]
struct Point {
    appends: Vec<u32>,
    fetches: Vec<u32>,
    /// 429 Too Many Requests, counted apart from other failures.
    limited: u64,
    /// Other failures, by status or transport error.
    errors: BTreeMap<String, u64>,
    elapsed: Duration,
}

impl std::fmt::Debug for Point {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0} appends/s, append p50 {} p99 {}, fetch p50 {} p99 {}, 429s {}, errors {:?}",
            self.appends_per_second(),
            micros(percentile(&self.appends, 50.0)),
            micros(percentile(&self.appends, 99.0)),
            micros(percentile(&self.fetches, 50.0)),
            micros(percentile(&self.fetches, 99.0)),
            self.limited,
            self.errors
        )
    }
}

impl Point {
    fn appends_per_second(&self) -> f64 {
        self.appends.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn merge(&mut self, other: Point) {
        self.appends.extend(other.appends);
        self.fetches.extend(other.fetches);
        self.limited += other.limited;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }

    /// Records one answer; whether it was a success.
    fn record(
        &mut self,
        answer: &Result<(u16, Bytes), String>,
        took: Duration,
        fetch: bool,
    ) -> bool {
        match answer {
            Ok((200, _)) => {
                let micros = u32::try_from(took.as_micros()).unwrap_or(u32::MAX);
                if fetch {
                    self.fetches.push(micros);
                } else {
                    self.appends.push(micros);
                }
                true
            }
            Ok((429, _)) => {
                self.limited += 1;
                false
            }
            Ok((status, _)) => {
                *self.errors.entry(status.to_string()).or_default() += 1;
                false
            }
            Err(e) => {
                *self.errors.entry(e.clone()).or_default() += 1;
                false
            }
        }
    }
}

/// Registers every device's alliance (50 at a time).
async fn register(devices: &mut [Sim], addr: SocketAddr) {
    for chunk in devices.chunks(50) {
        let tasks: Vec<_> = chunk
            .iter()
            .map(|d| {
                let request = d.client.register_request(now(), &mut OsRng);
                tokio::spawn(async move { Connection::new(addr).send(request).await })
            })
            .collect();
        for task in tasks {
            let (status, body) = task.await.unwrap().expect("the relay answers");
            assert_eq!(
                status,
                201,
                "registering: {}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}

/// The first `n` devices append and fetch in a loop for `window`; every
/// request started in the window counts, and the time is until the last one
/// answered.
async fn run_point(devices: &mut Vec<Sim>, n: usize, addr: SocketAddr, window: Duration) -> Point {
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(n);
    let (start_tx, start_rx) = tokio::sync::watch::channel(None::<Instant>);
    let mut tasks = Vec::new();
    for device in devices.drain(..n) {
        let (ready_tx, mut start_rx) = (ready_tx.clone(), start_rx.clone());
        tasks.push(tokio::spawn(async move {
            let mut device = device;
            let mut connection = Connection::new(addr);
            let mut point = Point::default();
            // Connect and warm up, unmeasured.
            let warm = connection.send(device.append()).await;
            assert!(matches!(warm, Ok((200, _))), "warm-up append: {warm:?}");
            ready_tx.send(()).await.unwrap();
            let start = start_rx.wait_for(Option::is_some).await.unwrap().unwrap();
            let deadline = start + window;
            while Instant::now() < deadline {
                let began = Instant::now();
                let answer = connection.send(device.append()).await;
                point.record(&answer, began.elapsed(), false);
                let began = Instant::now();
                let answer = connection.send(device.fetch()).await;
                if point.record(&answer, began.elapsed(), true)
                    && let Ok(page) = serde_json::from_slice::<BlobPage>(&answer.unwrap().1)
                {
                    device.cursor = page.next;
                }
            }
            (device, point, Instant::now())
        }));
    }
    for _ in 0..tasks.len() {
        ready_rx.recv().await.unwrap();
    }
    let start = Instant::now();
    start_tx.send(Some(start)).unwrap();
    let mut total = Point::default();
    let mut last = start;
    let mut back = Vec::new();
    for task in tasks {
        let (device, point, done) = task.await.unwrap();
        back.push(device);
        total.merge(point);
        last = last.max(done);
    }
    devices.splice(0..0, back);
    total.elapsed = last - start;
    total
}

fn percentile(sorted_or_not: &[u32], p: f64) -> u32 {
    if sorted_or_not.is_empty() {
        return 0;
    }
    let mut values = sorted_or_not.to_vec();
    values.sort_unstable();
    let rank = ((p / 100.0) * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

fn micros(us: u32) -> String {
    match us {
        0..1_000 => format!("{us} µs"),
        1_000..1_000_000 => format!("{:.1} ms", f64::from(us) / 1e3),
        _ => format!("{:.2} s", f64::from(us) / 1e6),
    }
}

/// The figures in a few sentences: the fewest devices, and the most.
fn summary(rows: &[(&str, usize, Point)], baseline: &BTreeMap<usize, f64>) -> String {
    let fewest = rows.iter().map(|r| r.1).min().unwrap();
    let most = rows.iter().map(|r| r.1).max().unwrap();
    let median = |p: &Point| micros(percentile(&p.appends, 50.0));
    let name = |server: &str| server.trim_start_matches("relay, ").to_owned();
    let relays = || rows.iter().filter(|r| r.0.starts_with("relay"));
    let alone: Vec<String> = relays()
        .filter(|r| r.1 == fewest)
        .map(|(server, _, p)| format!("{} on {}", median(p), name(server)))
        .collect();
    let hello = rows
        .iter()
        .find(|r| !r.0.starts_with("relay") && r.1 == fewest)
        .map_or_else(String::new, |h| median(&h.2));
    let who = if fewest == 1 {
        "a device alone".to_owned()
    } else {
        format!("with {fewest} devices at once, a device")
    };
    let mut text = format!(
        "In plain words: {who} had an append answered in a median {} (hello world: {hello}).",
        alone.join(" and ")
    );
    let crowd: Vec<String> = relays()
        .filter(|r| r.1 == most)
        .map(|(server, n, p)| {
            format!(
                "{:.0} a second on {} ({:.0} % of hello world's rate), half of them within {} and \
                 99 in 100 within {}",
                p.appends_per_second(),
                name(server),
                100.0 * p.appends_per_second() / baseline[n],
                median(p),
                micros(percentile(&p.appends, 99.0)),
            )
        })
        .collect();
    let _ = write!(
        text,
        " With {most} devices at once, the relay answered {}.",
        crowd.join("; and ")
    );
    let failed: u64 = relays()
        .map(|r| r.2.limited + r.2.errors.values().sum::<u64>())
        .sum();
    if failed == 0 {
        text.push_str(" No request was refused or failed.");
    } else {
        let _ = write!(
            text,
            " {failed} requests were refused or failed (see the table)."
        );
    }
    wrap(&text, 100)
}

/// `text` in lines of at most `width` characters, broken at spaces.
fn wrap(text: &str, width: usize) -> String {
    let mut lines: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let line = lines.last_mut().unwrap();
        if line.is_empty() {
            line.push_str(word);
        } else if line.chars().count() + 1 + word.chars().count() <= width {
            line.push(' ');
            line.push_str(word);
        } else {
            lines.push(word.to_owned());
        }
    }
    lines.join("\n")
}

fn table(
    rows: &[(&str, usize, Point)],
    baseline: &BTreeMap<usize, f64>,
    memory: &[(&str, u64)],
) -> String {
    let mut t = String::new();
    t.push_str(
        "| server | devices | appends/s | ÷ hello world | append p50 | append p99 | fetch p50 | fetch p99 | 429 answers | other failures |\n",
    );
    t.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
    for (server, n, point) in rows {
        let rate = point.appends_per_second();
        let errors = if point.errors.is_empty() {
            "0".to_owned()
        } else {
            point
                .errors
                .iter()
                .map(|(k, v)| format!("{v}× {k}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            t,
            "| {server} | {n} | {rate:.0} | {:.2} | {} | {} | {} | {} | {} | {errors} |",
            rate / baseline[n],
            micros(percentile(&point.appends, 50.0)),
            micros(percentile(&point.appends, 99.0)),
            micros(percentile(&point.fetches, 50.0)),
            micros(percentile(&point.fetches, 99.0)),
            point.limited,
        )
        .unwrap();
    }
    t.push_str("\n| server | peak resident memory (VmHWM), whole run |\n|---|---:|\n");
    for (server, kib) in memory {
        writeln!(t, "| {server} | {:.1} MiB |", *kib as f64 / 1024.0).unwrap();
    }
    t
}

fn section(machine: &Machine, seconds: f64, most: usize, postgres: &str, table: &str) -> String {
    let Machine {
        date,
        commit,
        cpu,
        cores,
        load,
        rustc,
    } = machine;
    let load_end = load_average();
    format!(
        r#"## Relay load

Measured on {date} at commit {commit}, with

```sh
cargo bench -p kith-tests --bench load
```

on the development machine: {cpu}, {cores} cores, shared with other engineers' builds
(load average {load} at the start, {load_end} at the end), {rustc}.
The bench builds the release relay (`target/release/kith-server`, log level `info` as deployed)
and runs it on SQLite, then on a fresh database on the machine's PostgreSQL {postgres}
(Debian's default settings, same machine). The per-device rate limit is off
(`KITH_DEVICE_BURST=0`): a simulated device sends hundreds of requests a second where a phone
sends a handful per sync, and would be answered 429 after its first 1,024.
Each point runs {seconds} s (`KITH_LOAD_SECONDS`; `KITH_LOAD_SECONDS=1` is a smoke run that leaves
this section alone).

Each simulated device is a real kith-core client, the steward of its own alliance ({most}
alliances registered up front on each backend: one device per alliance, which is what appends
look like to the relay), with its own keep-alive HTTP/1.1 connection (hyper), from a second
process over loopback. In a loop it appends one blob (1,324 random bytes, the size of the age file
of one padded contribution; about 1.8 KB of JSON) in one signed request, as a phone does after
writing one reflection, then fetches the blobs after its cursor in its cohort (its own new blob,
about 2 KB of JSON). The relay checks every request's signature and stores its nonce before
anything else (the replay guard lives in the database, so every request, fetches included, is a
database write), then checks membership, then appends or reads. So each append is two commits
that wait for the disk (the nonce, then the blob; SQLite runs with `synchronous=FULL`, PostgreSQL
flushes its log at each commit) and each fetch one: with few devices, the disk's flushes set the
pace, not the CPU. All devices run at once with no pause: this is the relay's capacity, not a
realistic day.

The baseline is `tests/examples/hello.rs`, an axum server on the same runtime that reads each body
and answers 200 with JSON of the same size, doing nothing else (no signature, no database). The
same generator drives it with the same devices, requests and concurrency in the same run. "÷
hello world" is the relay's appends per second divided by the baseline's at the same number of
devices: how much of what HTTP alone allows on this machine is left once the relay does its work.
The generator and the server (and PostgreSQL) share the 2 cores, so these are the figures of one
small machine doing both sides; a separate client machine would show more. Runs on this shared
machine differ by up to several times (other builds' disk writes slow every flush, and their
compilers take the cores): compare figures within one run, not across runs.

- **appends/s**: appends answered 200 per second, all devices together. Each device also fetches
  once per append, so the relay answers about twice as many requests.
- **p50 / p99**: time from sending a request to having its whole answer, for half of them and for
  99 in 100. With many devices most of it is waiting in line: for SQLite's single writer, and for
  the relay's database connections (4 on SQLite, 16 on PostgreSQL).
- **429 answers**: "too many requests" from a rate limit, counted apart. **Other failures**: any
  other answer than 200, or a connection error.
- **peak resident memory**: the server process's VmHWM (`/proc/PID/status`) after all its points,
  registering the alliances included.

{table}"#
    )
}

/// `doc` with its `## {title}` section (to the next `## ` heading or the end)
/// replaced by `section`, or with `section` added at the end.
fn replace_section(doc: &str, title: &str, section: &str) -> String {
    let heading = format!("## {title}\n");
    let section = format!("{}\n", section.trim_end());
    match doc.find(&heading) {
        Some(start) => {
            let after = start + heading.len();
            let end = doc[after..]
                .find("\n## ")
                .map_or(doc.len(), |i| after + i + 1);
            let rest = &doc[end..];
            let gap = if rest.is_empty() { "" } else { "\n" };
            format!("{}{section}{gap}{rest}", &doc[..start])
        }
        None => format!("{}\n\n{section}", doc.trim_end()),
    }
}
