//! Several relay instances on one PostgreSQL database, and live updates
//! between them: real relay processes on a fresh database of the machine's
//! PostgreSQL, real `kith` commands. A member watching through one instance
//! hears of what the steward sent through the other, without polling, and
//! so does a member on the long-poll fallback.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use kith_tests::{Relay, TestDatabase, bin, encodings_of, kith, shown};
use serde_json::Value;

fn dir(base: &tempfile::TempDir, name: &str) -> String {
    base.path().join(name).to_str().unwrap().to_owned()
}

/// `kith sync --watch --json` running, its stdout lines arriving on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// What it said on stderr (passed on to the test's stderr too).
    said: Arc<Mutex<String>>,
}

impl Watch {
    fn start(data_dir: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(bin("kith"))
            .args(["sync", "--watch", "--json", "--data-dir", data_dir])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("kith runs");
        let said = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let keep = Arc::clone(&said);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{line}");
                keep.lock().unwrap().push_str(&line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("one JSON object per line, not {line:?}: {e}"));
                if send.send(value).is_err() {
                    return;
                }
            }
        });
        Self { child, lines, said }
    }

    /// Waits (up to `bound`) for the watch to end by itself; its exit status
    /// and what it said.
    fn until_it_stops(&mut self, bound: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the stderr thread take the last lines.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.said.lock().unwrap().clone());
            }
            assert!(start.elapsed() < bound, "the watch is still running");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits (up to a generous bound; this is not a timing test) for a sync
    /// that received something; returns how long it took.
    fn until_received(&self, bound: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let left = bound.saturating_sub(start.elapsed());
            let report = self
                .lines
                .recv_timeout(left)
                .expect("the watching device heard of the change and synced");
            assert_eq!(report["rejected"], Value::Array(vec![]), "{report}");
            if report["received"].as_u64().unwrap() > 0 {
                return start.elapsed();
            }
        }
    }

    /// The first sync (at `ready`): the watch is listening from then on.
    fn until_listening(&self) {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("the watch syncs once when it starts listening");
    }

    /// No sync without a change: the watch goes quiet for 3 s. Notices of
    /// the writes just before it started (the joins) may still be on their
    /// way through LISTEN/NOTIFY and make it sync a few times first (one per
    /// notice); that is right, so such syncs, receiving nothing, are allowed.
    /// A watch that synced on a timer of 3 s or less would never go quiet.
    fn settles(&self) -> bool {
        for _ in 0..10 {
            match self.lines.recv_timeout(Duration::from_secs(3)) {
                Err(_) => return true,
                Ok(report) => assert_eq!(report["received"], 0, "{report}"),
            }
        }
        false
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_instances_on_one_database_push_changes_to_each_other() {
    let db = TestDatabase::create();
    let base = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(base.path().join("a")).unwrap();
    std::fs::create_dir_all(base.path().join("b")).unwrap();
    let relay_a = Relay::start_postgres(&base.path().join("a"), &db.url);
    let relay_b = Relay::start_postgres(&base.path().join("b"), &db.url);
    let (steward, alex, blake) = (
        dir(&base, "steward"),
        dir(&base, "alex"),
        dir(&base, "blake"),
    );

    // The steward works through instance A; Alex and Blake join and sync
    // through instance B.
    kith(&[
        "init",
        "--data-dir",
        &steward,
        "--relay",
        &relay_a.url(),
        "--alliance",
        "Relations study",
        "--cohort",
        "Parents",
        "--name",
        "Sam",
    ]);
    for (who, name) in [(&alex, "Alex"), (&blake, "Blake")] {
        let invite = kith(&["invite", "--data-dir", &steward, "--cohort", "Parents"]);
        // The invite names instance A; they reach the same relay through B.
        kith(&[
            "join",
            "--data-dir",
            who,
            "--invite",
            invite["invite"].as_str().unwrap(),
            "--name",
            name,
            "--relay",
            &relay_b.url(),
        ]);
    }

    let alex_watch = Watch::start(&alex, &[]);
    let blake_poll = Watch::start(&blake, &["--poll"]);
    alex_watch.until_listening();
    blake_poll.until_listening();
    // Nothing new: the stream stays quiet (a watch that polled would sync
    // again and print).
    assert!(alex_watch.settles(), "no sync without a change");

    kith(&[
        "contribute",
        "--data-dir",
        &steward,
        "--text",
        "Welcome, everyone.",
    ]);
    let sent = kith(&["sync", "--data-dir", &steward]);
    assert_eq!(sent["sent"], 1);
    let streamed = alex_watch.until_received(Duration::from_secs(30));
    // Within 15 s: the poll waits 25 s at the relay, so this proves the
    // relay answered it early, when the blob arrived.
    let polled = blake_poll.until_received(Duration::from_secs(15));
    eprintln!(
        "heard through the other instance after {} ms (stream) and {} ms (long poll)",
        streamed.as_millis(),
        polled.as_millis()
    );
    drop(alex_watch);
    drop(blake_poll);
    assert_eq!(shown(&alex), vec!["Welcome, everyone.".to_owned()]);
    assert_eq!(shown(&blake), vec!["Welcome, everyone.".to_owned()]);

    // And the other way: Alex writes through B; the steward, watching
    // through A, hears of it.
    let steward_watch = Watch::start(&steward, &[]);
    steward_watch.until_listening();
    kith(&[
        "contribute",
        "--data-dir",
        &alex,
        "--text",
        "Glad to be here.",
    ]);
    kith(&["sync", "--data-dir", &alex]);
    steward_watch.until_received(Duration::from_secs(30));
    drop(steward_watch);
    assert_eq!(
        shown(&steward),
        vec![
            "Glad to be here.".to_owned(),
            "Welcome, everyone.".to_owned()
        ]
    );

    // A watching device that is removed stops, on the stream and on long
    // polls alike, and says why, instead of asking again and again.
    let mut blake_watch = Watch::start(&blake, &[]);
    let mut blake_poll = Watch::start(&blake, &["--poll"]);
    blake_watch.until_listening();
    blake_poll.until_listening();
    kith(&[
        "member",
        "remove",
        "--data-dir",
        &steward,
        "--member",
        "Blake",
    ]);
    for watch in [&mut blake_watch, &mut blake_poll] {
        let (status, said) = watch.until_it_stops(Duration::from_secs(90));
        assert!(!status.success(), "a removed device's watch fails");
        assert!(said.contains("removed"), "it says why: {said}");
    }

    // What PostgreSQL holds is ciphertext and opaque ids: no text and no
    // name, in any encoding (bytea reads back as hex here), in any table.
    let dump = table_dump(&db.url);
    let lower = dump.to_lowercase();
    let long = ["Welcome, everyone.", "Glad to be here.", "Relations study"];
    for secret in long {
        for form in encodings_of(secret) {
            let form = String::from_utf8(form).unwrap().to_lowercase();
            assert!(!lower.contains(&form), "{secret:?} found as {form:?}");
        }
    }
    // Short names: as themselves and as hex (their base64 would be too
    // short to tell from chance).
    for name in ["Parents", "Alex", "Blake", "Sam"] {
        for form in [name.to_lowercase(), hex::encode(name)] {
            assert!(!lower.contains(&form), "{name:?} found as {form:?}");
        }
    }
}

/// Every row of every table of the database, as text.
fn table_dump(url: &str) -> String {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(&pool)
            .await
            .unwrap();
            assert!(tables.iter().any(|t| t == "blobs"), "{tables:?}");
            let mut dump = String::new();
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" AS t"))
                        .fetch_all(&pool)
                        .await
                        .unwrap();
                dump.push_str(&rows.join("\n"));
            }
            assert!(dump.len() > 10_000, "the dump holds the blobs");
            dump
        })
}
