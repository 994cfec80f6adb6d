//! The relay's limits, each answered clearly: bodies too large (413, before
//! they are read), a device sending too fast (429 with Retry-After), bodies
//! sent too slowly (408), headers sent too slowly (the connection is closed),
//! an alliance over its storage quota (507); and shutdown finishes requests
//! in flight, within its grace period. Each test serves the real router with
//! `kith_server::run_with` on a real socket, over SQLite in a temporary folder.
//!
//! Timings: limits are set to 1 s and every wait allows 10 s, so a loaded
//! machine cannot make a test fail, and a missing limit still does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kith_core::api::{self, AppendBlobs, BlobRecord, HttpRequest};
use kith_core::{BlobId, Client, DeviceKeys, DocId, NewAlliance, Timestamp};
use kith_server::storage::{RequestNonce, SqliteStorage, Storage};
use kith_server::{AppState, Limits, app, run_with};
use rand_core::{OsRng, RngCore};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Generous bound for anything that should happen "within a second".
const PATIENCE: Duration = Duration::from_secs(10);

fn now() -> Timestamp {
    kith_server::now()
}

/// A relay served by `run_with` on a free port.
struct TestRelay {
    addr: SocketAddr,
    storage: Arc<SqliteStorage>,
    stop: Option<oneshot::Sender<()>>,
    served: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl TestRelay {
    /// A relay with `limits`, open to anyone registering (these tests
    /// register alliances of their own).
    async fn start(limits: Limits) -> Self {
        let limits = Limits {
            open_registration: true,
            ..limits
        };
        let dir = tempfile::tempdir().unwrap();
        let storage = SqliteStorage::open(dir.path()).await.unwrap();
        let state = AppState::with_limits(storage, limits.clone());
        let storage = state.storage.clone();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(async move {
            run_with(listener, app(state, None), &limits, async {
                let _ = stopped.await;
            })
            .await
        });
        Self {
            addr,
            storage,
            stop: Some(stop),
            served,
            _dir: dir,
        }
    }

    /// Signals shutdown; returns the serving task.
    fn shut_down(&mut self) {
        let _ = self.stop.take().unwrap().send(());
    }
}

/// An answer, as read off the socket.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn assert_refused(&self, status: u16, code: &str, says: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.body["error"], code, "{self:?}");
        let message = self.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "{message:?} should say {says:?}");
    }
}

/// The head of an HTTP/1.1 request for `request`, closing the connection
/// after the answer; `length` is the Content-Length to declare.
fn head_of(request: &HttpRequest, length: usize) -> String {
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: relay\r\nconnection: close\r\ncontent-length: {length}\r\n",
        request.method, request.path
    );
    for (name, value) in &request.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Reads until the relay closes the connection (within [`PATIENCE`]).
async fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut bytes))
        .await
        .expect("the relay answers and closes the connection in time")
        .unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Answer {
        status,
        head: head.to_owned(),
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// Sends `request` whole and reads the answer.
async fn send(addr: SocketAddr, request: &HttpRequest) -> Answer {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut bytes = head_of(request, request.body.len()).into_bytes();
    bytes.extend_from_slice(&request.body);
    stream.write_all(&bytes).await.unwrap();
    read_answer(&mut stream).await
}

/// A steward's device whose alliance is registered with the relay at `addr`.
async fn steward(addr: SocketAddr) -> Client {
    let (client, _) = Client::create_alliance(
        NewAlliance {
            name: "Limits".into(),
            cohort: "Cohort".into(),
            relay: format!("http://{addr}"),
            pseudonym: "Sam".into(),
            researchers: vec![],
            history: kith_core::History::FromJoin,
        },
        now(),
        &mut OsRng,
    )
    .unwrap();
    let answer = send(addr, &client.register_request(now(), &mut OsRng)).await;
    assert_eq!(answer.status, 201, "{answer:?}");
    client
}

/// A blob in `client`'s cohort: an age header, then `data` (the relay
/// cannot tell it from a real one).
fn blob(client: &Client, data: Vec<u8>) -> BlobRecord {
    let mut id = [0u8; 16];
    OsRng.fill_bytes(&mut id);
    let mut bytes = kith_core::relay_rules::AGE_HEADER.to_vec();
    bytes.extend(data);
    BlobRecord {
        id: BlobId(id),
        doc: DocId([1; 16]),
        scope: client.cohort().unwrap(),
        covers: None,
        seq: None,
        data: bytes,
    }
}

fn append(client: &Client, blobs: Vec<BlobRecord>) -> HttpRequest {
    let body = serde_json::to_vec(&AppendBlobs { blobs }).unwrap();
    client.sign_request(
        "POST",
        api::paths::blobs(client.profile().alliance),
        body,
        now(),
        &mut OsRng,
    )
}

fn fetch_all(client: &Client) -> HttpRequest {
    let cohort = client.cohort().unwrap();
    let path = api::paths::blobs_after(client.profile().alliance, 0, 256, Some(&[(cohort, 0)]));
    client.sign_request("GET", path, vec![], now(), &mut OsRng)
}

fn log(client: &Client) -> HttpRequest {
    let path = api::paths::log_from(client.profile().alliance, 0);
    client.sign_request("GET", path, vec![], now(), &mut OsRng)
}

#[tokio::test]
async fn a_body_declared_too_large_is_refused_before_it_is_sent() {
    let relay = TestRelay::start(Limits::default()).await;
    let owner = steward(relay.addr).await;
    let huge = 100 * 1024 * 1024;
    // Unsigned, and signed: both refused on the declared length alone (not
    // one byte of the body is sent), before any signature is looked at.
    let unsigned = HttpRequest {
        method: "POST",
        path: api::paths::blobs(owner.profile().alliance),
        headers: vec![],
        body: vec![],
    };
    let signed = append(&owner, vec![blob(&owner, vec![0; 10])]);
    for request in [unsigned, signed] {
        let mut stream = TcpStream::connect(relay.addr).await.unwrap();
        stream
            .write_all(head_of(&request, huge).as_bytes())
            .await
            .unwrap();
        read_answer(&mut stream).await.assert_refused(
            413,
            "too_large",
            &format!("at most {} bytes", api::MAX_REQUEST_BYTES),
        );
    }
    // A client that writes a body a little too large in full before it
    // reads (as most do) still gets the answer, not a reset connection.
    // (The pause lets a relay that answered at once close the connection
    // first, as it would over a slower network.)
    let request = append(&owner, vec![blob(&owner, vec![0; 10])]);
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let head = head_of(&request, api::MAX_REQUEST_BYTES + 1);
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let body = vec![b'a'; api::MAX_REQUEST_BYTES + 1];
    stream
        .write_all(&body)
        .await
        .expect("the relay reads a body it refuses, when it is not much too large");
    read_answer(&mut stream)
        .await
        .assert_refused(413, "too_large", "too large");
    // A body with no declared length is cut off where it is read.
    let request = append(&owner, vec![blob(&owner, vec![0; 10])]);
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let head = head_of(&request, 0).replace("content-length: 0", "transfer-encoding: chunked");
    stream.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0;
    while sent <= api::MAX_REQUEST_BYTES {
        let mut framed = format!("{:x}\r\n", chunk.len()).into_bytes();
        framed.extend_from_slice(&chunk);
        framed.extend_from_slice(b"\r\n");
        if stream.write_all(&framed).await.is_err() {
            break; // the relay already answered and closed
        }
        sent += chunk.len();
    }
    let _ = stream.write_all(b"0\r\n\r\n").await;
    read_answer(&mut stream)
        .await
        .assert_refused(413, "too_large", "too large");
    // Nothing was stored, and the relay still serves the device.
    let page = send(relay.addr, &fetch_all(&owner)).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert_eq!(page.body["blobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn a_device_sending_too_fast_is_told_when_to_try_again() {
    let relay = TestRelay::start(Limits {
        device_burst: 3,
        // So slow that no token comes back during the test.
        device_refill_per_minute: 1,
        ..Limits::default()
    })
    .await;
    let owner = steward(relay.addr).await; // the first of its 3
    for _ in 0..2 {
        assert_eq!(send(relay.addr, &log(&owner)).await.status, 200);
    }
    let refused = log(&owner);
    let answer = send(relay.addr, &refused).await;
    answer.assert_refused(429, "rate_limited", "too many requests");
    let retry: u64 = answer
        .header("retry-after")
        .expect("a Retry-After header")
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    let message = answer.body["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("wait {retry} seconds")),
        "{message}"
    );
    // Its nonce was kept: nonces are checked before the allowance is
    // counted, so a replayed request is refused as a replay and spends none
    // of the device's allowance.
    let device = owner.device_id();
    let nonce: [u8; 16] = hex::decode(header_of(&refused, api::HEADER_NONCE))
        .unwrap()
        .try_into()
        .unwrap();
    assert!(
        !relay
            .storage
            .first_use(RequestNonce {
                device,
                nonce,
                time: now()
            })
            .await
            .unwrap(),
        "the nonce is checked (and kept) before the allowance is counted"
    );
    // A bad signature in the device's name is refused as such (401), and
    // spends nothing: the allowance is counted only once a signature checks out.
    let mut forged = log(&owner);
    let signature = forged
        .headers
        .iter_mut()
        .find(|(k, _)| *k == api::HEADER_SIGNATURE);
    signature.unwrap().1 = "AAAA".into();
    send(relay.addr, &forged).await.assert_refused(
        401,
        "unauthenticated",
        "signature does not match",
    );
    // Another device has its own allowance (here: it is refused as a stranger, not for its rate).
    let stranger = DeviceKeys::generate(&mut OsRng);
    let path = api::paths::log_from(owner.profile().alliance, 0);
    let mut nonce = [0u8; 16];
    OsRng.fill_bytes(&mut nonce);
    let request = api::signed_request(&stranger, "GET", path, vec![], now(), nonce);
    send(relay.addr, &request)
        .await
        .assert_refused(403, "forbidden", "not a member");
}

fn header_of<'a>(request: &'a HttpRequest, name: &str) -> &'a str {
    request
        .headers
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

#[tokio::test]
async fn headers_sent_too_slowly_close_the_connection() {
    let relay = TestRelay::start(Limits {
        header_read_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    // Half a request head, then nothing (slowloris).
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: relay\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(
        closed.is_ok(),
        "the relay kept a half-sent request open for {PATIENCE:?}"
    );
    // A kept-alive connection waiting for its next request is closed too.
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nhost: relay\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut answer)).await;
    assert!(closed.is_ok(), "an idle connection stayed open");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "the complete request was answered first"
    );
}

#[tokio::test]
async fn a_body_sent_too_slowly_is_answered_408() {
    let relay = TestRelay::start(Limits {
        body_read_timeout_secs: 1,
        ..Limits::default()
    })
    .await;
    let owner = steward(relay.addr).await;
    let request = append(&owner, vec![blob(&owner, vec![7; 100])]);
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let mut bytes = head_of(&request, request.body.len()).into_bytes();
    bytes.extend_from_slice(&request.body[..request.body.len() / 2]);
    stream.write_all(&bytes).await.unwrap();
    // The other half never comes.
    read_answer(&mut stream)
        .await
        .assert_refused(408, "timeout", "did not arrive in time");
    let page = send(relay.addr, &fetch_all(&owner)).await;
    assert_eq!(page.body["blobs"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_alliance_over_its_quota_is_refused_507_and_nothing_is_stored() {
    let relay = TestRelay::start(Limits {
        alliance_quota_bytes: 10_000,
        ..Limits::default()
    })
    .await;
    let owner = steward(relay.addr).await;
    let first = append(
        &owner,
        vec![blob(&owner, vec![1; 4000]), blob(&owner, vec![2; 4000])],
    );
    assert_eq!(send(relay.addr, &first).await.status, 200);
    // 8,000 + 2 × 1,500 > 10,000: neither of the two is stored.
    let over = append(
        &owner,
        vec![blob(&owner, vec![3; 1500]), blob(&owner, vec![4; 1500])],
    );
    send(relay.addr, &over).await.assert_refused(
        507,
        "over_quota",
        "ask the relay's operator for more",
    );
    let page = send(relay.addr, &fetch_all(&owner)).await;
    assert_eq!(page.body["blobs"].as_array().unwrap().len(), 2);
    // What still fits is taken.
    let fits = append(&owner, vec![blob(&owner, vec![5; 1500])]);
    assert_eq!(send(relay.addr, &fits).await.status, 200);
}

#[tokio::test]
async fn shutdown_finishes_the_request_in_flight_then_stops() {
    let mut relay = TestRelay::start(Limits::default()).await;
    let owner = steward(relay.addr).await;
    let request = append(&owner, vec![blob(&owner, vec![9; 100])]);
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    let mut bytes = head_of(&request, request.body.len()).into_bytes();
    let half = bytes.len() + request.body.len() / 2;
    bytes.extend_from_slice(&request.body);
    stream.write_all(&bytes[..half]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay.shut_down();
    // New connections are refused once the listener is gone...
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while TcpStream::connect(relay.addr).await.is_ok() {
        assert!(tokio::time::Instant::now() < deadline, "still accepting");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ...and the relay waits for the request in flight.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!relay.served.is_finished(), "stopped before answering");
    stream.write_all(&bytes[half..]).await.unwrap();
    let answer = read_answer(&mut stream).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    tokio::time::timeout(PATIENCE, &mut relay.served)
        .await
        .expect("stops once the request is answered")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn shutdown_does_not_wait_beyond_its_grace_period() {
    let mut relay = TestRelay::start(Limits {
        shutdown_grace_secs: 1,
        ..Limits::default()
    })
    .await;
    let owner = steward(relay.addr).await;
    // A request that will not finish by itself (as a live-updates stream would not).
    let request = append(&owner, vec![blob(&owner, vec![9; 100])]);
    let mut stream = TcpStream::connect(relay.addr).await.unwrap();
    stream
        .write_all(head_of(&request, request.body.len()).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    relay.shut_down();
    tokio::time::timeout(PATIENCE, &mut relay.served)
        .await
        .expect("stops after the grace period")
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "the connection was left open");
}
