//! What the relay acknowledged survives it: a relay killed (SIGKILL) while
//! devices are appending still has every blob it answered 200 for, byte for
//! byte, after a restart; a relay told to stop (SIGTERM) refuses new
//! connections but finishes the request it is reading, and stores it. Real
//! relay processes, on SQLite and on PostgreSQL.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kith_core::api::{self, AppendBlobs, Appended, BlobPage, BlobRecord, HttpRequest};
use kith_core::{BlobId, Client, DocId, NewAlliance, ScopeId};
use kith_tests::device::now;
use kith_tests::{Relay, TestDatabase};
use rand_core::{OsRng, RngCore};

/// Appending devices in the crash test.
const DEVICES: usize = 6;
/// Blobs acknowledged in all before the kill, so that it lands mid-stream.
const ACKED_BEFORE_KILL: usize = 300;

/// A steward's device with its own alliance, registered on the relay.
fn registered(url: &str) -> Client {
    let (client, _) = Client::create_alliance(
        NewAlliance {
            name: "Durability".into(),
            cohort: "Cohort".into(),
            relay: url.into(),
            pseudonym: "Writer".into(),
            researchers: vec![],
            history: kith_core::History::FromJoin,
        },
        now(),
        &mut OsRng,
    )
    .unwrap();
    let (status, body) = send(&agent(), url, &client.register_request(now(), &mut OsRng)).unwrap();
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    client
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Sends a request; a transport error (the relay died under it) is an `Err`.
fn send(
    agent: &ureq::Agent,
    base: &str,
    request: &HttpRequest,
) -> Result<(u16, Vec<u8>), ureq::Error> {
    let url = format!("{base}{}", request.path);
    let mut response = if request.method == "GET" {
        let mut b = agent.get(&url);
        for (k, v) in &request.headers {
            b = b.header(*k, v);
        }
        b.call()?
    } else {
        let mut b = agent.post(&url);
        for (k, v) in &request.headers {
            b = b.header(*k, v);
        }
        b.send(&request.body[..])?
    };
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_vec()?;
    Ok((status, body))
}

/// A blob as a device would send it: random ids, ciphertext-like random bytes.
fn blob(scope: ScopeId, seq: u64, len: usize) -> BlobRecord {
    // An age header, then random bytes: the relay cannot tell it from a real blob.
    let mut data = vec![0u8; len];
    OsRng.fill_bytes(&mut data);
    data[..kith_core::relay_rules::AGE_HEADER.len()]
        .copy_from_slice(kith_core::relay_rules::AGE_HEADER);
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    BlobRecord {
        id: BlobId(id),
        doc: DocId([7; 16]),
        scope,
        covers: None,
        seq: Some(seq),
        data,
    }
}

/// Every blob of the device's alliance, as the device fetches them.
fn fetch_all(device: &Client, url: &str) -> Vec<BlobRecord> {
    let alliance = device.profile().alliance;
    let member = device.profile().member;
    let scopes: Vec<(ScopeId, u64)> = device
        .membership()
        .scopes_of(&member)
        .into_iter()
        .map(|scope| (scope, 0))
        .collect();
    let agent = agent();
    let mut blobs = Vec::new();
    let mut after = 0;
    loop {
        let path =
            api::paths::blobs_after(alliance, after, api::MAX_BLOBS_PER_FETCH, Some(&scopes));
        let request = device.sign_request("GET", path, Vec::new(), now(), &mut OsRng);
        let (status, body) = send(&agent, url, &request).expect("the restarted relay answers");
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let page: BlobPage = serde_json::from_slice(&body).unwrap();
        blobs.extend(page.blobs);
        after = page.next;
        if !page.more {
            return blobs;
        }
    }
}

/// What one device's appends came to.
struct Outcome {
    device: Client,
    /// Blobs in appends the relay answered 200 for, naming them stored.
    acked: Vec<BlobRecord>,
    /// Blobs of the append that got no answer: in flight when the relay
    /// died (or sent just after).
    in_flight: Vec<BlobRecord>,
}

/// Appends 1 to 8 blobs at a time (mixed sizes, so the kill can land inside
/// a multi-row transaction) until the relay stops answering.
fn append_until_the_relay_dies(device: Client, url: String, acked: Arc<AtomicUsize>) -> Outcome {
    let agent = agent();
    let scope = device.cohort().unwrap();
    let alliance = device.profile().alliance;
    let mut outcome = Outcome {
        device,
        acked: Vec::new(),
        in_flight: Vec::new(),
    };
    let device = &outcome.device;
    let mut seq = 0;
    // Bounded, in case the kill never comes (the main thread then fails).
    for round in 0..20_000u64 {
        let count = 1 + (round % 8) as usize;
        let blobs: Vec<BlobRecord> = (0..count)
            .map(|_| {
                seq += 1;
                blob(scope, seq, 1000 + (OsRng.next_u32() % 3000) as usize)
            })
            .collect();
        let body = serde_json::to_vec(&AppendBlobs {
            blobs: blobs.clone(),
        })
        .unwrap();
        let request =
            device.sign_request("POST", api::paths::blobs(alliance), body, now(), &mut OsRng);
        match send(&agent, &url, &request) {
            Ok((200, body)) => {
                let answer: Appended = serde_json::from_slice(&body).unwrap();
                let ids: Vec<BlobId> = blobs.iter().map(|b| b.id).collect();
                assert_eq!(answer.stored, ids, "the relay names what it stored");
                acked.fetch_add(count, Ordering::SeqCst);
                outcome.acked.extend(blobs);
            }
            Ok((status, body)) => panic!(
                "an append while the relay was up got {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            Err(_) => {
                outcome.in_flight = blobs;
                break;
            }
        }
    }
    outcome
}

fn acknowledged_blobs_survive_a_kill(relay: &mut Relay, backend: &str) {
    let url = relay.url();
    let devices: Vec<Client> = (0..DEVICES).map(|_| registered(&url)).collect();
    let acked = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = devices
        .into_iter()
        .map(|device| {
            let (url, acked) = (url.clone(), acked.clone());
            std::thread::spawn(move || append_until_the_relay_dies(device, url, acked))
        })
        .collect();
    // Kill once enough went through that appends are surely streaming.
    let deadline = Instant::now() + Duration::from_secs(120);
    while acked.load(Ordering::SeqCst) < ACKED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "the devices' appends did not get through; see {}",
            relay.log.display()
        );
        assert!(
            !writers.iter().any(|w| w.is_finished()),
            "a device stopped appending before the kill"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    relay.kill();
    let outcomes: Vec<Outcome> = writers.into_iter().map(|w| w.join().unwrap()).collect();
    relay.restart();

    let (mut acked_blobs, mut in_flight_blobs, mut in_flight_appends) = (0, 0, 0);
    let mut in_flight_stored = 0;
    for outcome in &outcomes {
        let stored = fetch_all(&outcome.device, &url);
        let by_id: std::collections::HashMap<BlobId, &BlobRecord> =
            stored.iter().map(|b| (b.id, b)).collect();
        for sent in &outcome.acked {
            let back = by_id
                .get(&sent.id)
                .unwrap_or_else(|| panic!("{backend}: acknowledged blob {} is gone", sent.id));
            assert_eq!(
                **back, *sent,
                "{backend}: acknowledged blob {} changed",
                sent.id
            );
        }
        for sent in &outcome.in_flight {
            if let Some(back) = by_id.get(&sent.id) {
                assert_eq!(**back, *sent, "{backend}: blob {} changed", sent.id);
                in_flight_stored += 1;
            }
        }
        // Nothing else appears: the relay holds only what was sent.
        assert_eq!(
            stored.len(),
            outcome.acked.len()
                + outcome
                    .in_flight
                    .iter()
                    .filter(|b| by_id.contains_key(&b.id))
                    .count(),
            "{backend}: the relay holds blobs nobody sent"
        );
        acked_blobs += outcome.acked.len();
        in_flight_blobs += outcome.in_flight.len();
        in_flight_appends += usize::from(!outcome.in_flight.is_empty());
    }
    eprintln!(
        "{backend}: {DEVICES} devices; {acked_blobs} blobs acknowledged before the SIGKILL, all read back \
         identical after the restart; {in_flight_appends} appends ({in_flight_blobs} blobs) went \
         unanswered (in flight at the kill, or sent just after), of which {in_flight_stored} blobs \
         were stored"
    );

    // The restarted relay takes appends again.
    let device = &outcomes[0].device;
    let more = blob(device.cohort().unwrap(), 1_000_000, 1200);
    let body = serde_json::to_vec(&AppendBlobs { blobs: vec![more] }).unwrap();
    let request = device.sign_request(
        "POST",
        api::paths::blobs(device.profile().alliance),
        body,
        now(),
        &mut OsRng,
    );
    assert_eq!(send(&agent(), &url, &request).unwrap().0, 200);
}

#[test]
fn acknowledged_blobs_survive_a_kill_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path());
    acknowledged_blobs_survive_a_kill(&mut relay, "SQLite");
}

#[test]
fn acknowledged_blobs_survive_a_kill_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create();
    let mut relay = Relay::start_postgres(dir.path(), &db.url);
    acknowledged_blobs_survive_a_kill(&mut relay, "PostgreSQL");
}

/// Reads a response's status line and headers; returns the status and the
/// content-length.
fn read_head(reader: &mut impl BufRead) -> (u16, usize) {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP status line: {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let header = line.trim_end();
        if header.is_empty() {
            return (status, length);
        }
        if let Some((name, value)) = header.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
}

/// Whether process `pid` has exited (a zombie still waiting to be reaped
/// counts: it serves nothing).
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).map_or(true, |stat| {
        stat.rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
    })
}

fn graceful_shutdown_finishes_requests_in_flight(relay: &mut Relay, backend: &str) {
    let url = relay.url();
    let device = registered(&url);
    // A large append (the largest blob there is), sent slowly.
    let big = blob(device.cohort().unwrap(), 1, api::MAX_BLOB_BYTES);
    let body = serde_json::to_vec(&AppendBlobs {
        blobs: vec![big.clone()],
    })
    .unwrap();
    let request = device.sign_request(
        "POST",
        api::paths::blobs(device.profile().alliance),
        body,
        now(),
        &mut OsRng,
    );
    let mut stream = TcpStream::connect(("127.0.0.1", relay.port)).unwrap();
    // Only so a relay that never answers fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut head = format!(
        "POST {} HTTP/1.1\r\nhost: 127.0.0.1:{}\r\ncontent-length: {}\r\nexpect: 100-continue\r\n",
        request.path,
        relay.port,
        request.body.len()
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // 100 Continue: the relay is reading this request's body, so it is in
    // flight, not waiting in the listen queue.
    assert_eq!(read_head(&mut reader).0, 100, "{backend}");
    let (first, rest) = request.body.split_at(request.body.len() / 4);
    stream.write_all(first).unwrap();

    let pid = relay.pid().unwrap();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    // New connections are refused from now on (a deadline, not a timing
    // requirement: the relay closes its listener as soon as it sees SIGTERM).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match TcpStream::connect(("127.0.0.1", relay.port)) {
            // Refused; or reset, when the connection reached the listen
            // queue just as the relay closed its listener.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ) =>
            {
                break;
            }
            Err(e) => panic!("{backend}: connecting after SIGTERM failed otherwise: {e}"),
            Ok(_) => {
                assert!(
                    Instant::now() < deadline,
                    "{backend}: the relay still accepts connections after SIGTERM"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
    // The rest of the body, slowly; the request is still being served.
    for chunk in rest.chunks(rest.len().div_ceil(6)) {
        std::thread::sleep(Duration::from_millis(100));
        stream.write_all(chunk).unwrap();
        assert_eq!(
            TcpStream::connect(("127.0.0.1", relay.port))
                .unwrap_err()
                .kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{backend}: a new connection was taken while shutting down"
        );
    }
    let (status, length) = read_head(&mut reader);
    let mut answer = vec![0u8; length];
    reader.read_exact(&mut answer).unwrap();
    assert_eq!(
        status,
        200,
        "{backend}: the request in flight at SIGTERM: {}",
        String::from_utf8_lossy(&answer)
    );
    let answer: Appended = serde_json::from_slice(&answer).unwrap();
    assert_eq!(answer.stored, vec![big.id]);
    drop((stream, reader));

    // With nothing left in flight the relay exits by itself.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !exited(pid) {
        assert!(
            Instant::now() < deadline,
            "{backend}: the relay did not exit after SIGTERM; see {}",
            relay.log.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    relay.restart();
    let stored = fetch_all(&device, &url);
    assert!(
        stored.contains(&big),
        "{backend}: the blob acknowledged during shutdown is not stored after a restart"
    );
    eprintln!(
        "{backend}: a {} byte append in flight at SIGTERM was answered 200 and is stored after a restart; \
         new connections were refused meanwhile",
        request.body.len()
    );
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path());
    graceful_shutdown_finishes_requests_in_flight(&mut relay, "SQLite");
}

#[test]
fn graceful_shutdown_finishes_requests_in_flight_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create();
    let mut relay = Relay::start_postgres(dir.path(), &db.url);
    graceful_shutdown_finishes_requests_in_flight(&mut relay, "PostgreSQL");
}
