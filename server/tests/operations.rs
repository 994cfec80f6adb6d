//! The relay as an operator runs it: settings from a file, the environment
//! and flags (in that order of strength), a bad file refused with its line,
//! and the readiness and metrics endpoints of a real process.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RELAY: &str = env!("CARGO_BIN_EXE_kith-server");

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `GET path` over plain HTTP/1.1: (status, body), or None if nothing listens.
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.get(9..12)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_until_up(relay: &mut Running, port: u16, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while get(port, "/healthz").is_none() {
        assert!(
            relay.0.try_wait().unwrap().is_none(),
            "the relay exited: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "the relay did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let metrics_port = free_port();
    let config = dir.path().join("relay.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\nlog_format = \"json\"\n",
            dir.path().join("from-file").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("relay.log");
    let mut relay = Running(
        Command::new(RELAY)
            .arg("--config")
            .arg(&config)
            .args(["--listen", &format!("127.0.0.1:{flag_port}")])
            .env("KITH_METRICS_LISTEN", format!("127.0.0.1:{metrics_port}"))
            .env("KITH_LISTEN", format!("127.0.0.1:{env_port}"))
            .env("KITH_DATA_DIR", dir.path().join("from-env"))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until_up(&mut relay, flag_port, &log);

    assert!(get(env_port, "/healthz").is_none(), "the flag did not win");
    assert!(
        get(file_port, "/healthz").is_none(),
        "the file's listen won"
    );
    assert!(dir.path().join("from-env/relay.sqlite3").exists());
    assert!(!dir.path().join("from-file").exists());

    assert_eq!(get(flag_port, "/readyz"), Some((200, "ready".into())));
    // Metrics are served on their own address only: they show when people
    // write, so the public listener does not serve them.
    assert_eq!(get(flag_port, "/metrics").map(|(s, _)| s), Some(404));
    let (status, metrics) = get(metrics_port, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains(
            "kith_http_requests_total{route=\"/readyz\",method=\"GET\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    // The file's log_format applies: every line is a JSON object.
    drop(relay);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("listening"), "{text}");
    for line in text.lines() {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            value["level"].is_string() && value["fields"].is_object(),
            "{line}"
        );
    }
}

#[test]
fn a_bad_config_file_stops_the_relay_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nquota = 5\n").unwrap();
    let out = Command::new(RELAY)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&config.display().to_string()), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(stderr.contains("unknown field `quota`"), "{stderr}");
    assert!(stderr.contains("Fix that line"), "{stderr}");

    let missing = dir.path().join("missing.toml");
    let out = Command::new(RELAY)
        .env("KITH_CONFIG", &missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&missing.display().to_string()), "{stderr}");
}

#[test]
fn a_database_that_is_not_postgres_is_refused_without_repeating_the_url() {
    let out = Command::new(RELAY)
        .env("KITH_DATABASE_URL", "mysql://kith:hunter2@db/kith")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("postgres://"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

#[test]
fn the_readme_lists_every_setting() {
    let readme = include_str!("../../README.md");
    for (key, env, _) in kith_server::config::SETTINGS {
        let flag = key.replace('_', "-");
        let row = format!("| `{key}` | `--{flag}` / `{env}` |");
        assert!(
            readme.contains(&row),
            "README.md's Deployment table lacks the setting {key}: add a row starting {row}"
        );
    }
}
