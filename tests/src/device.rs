//! kith-core devices driven in this process against a real relay over
//! HTTP, for tests that need many more writes than spawning `kith` for each
//! would allow. Counts the bytes each device downloads.

use std::time::{SystemTime, UNIX_EPOCH};

use kith_core::{
    Client, HttpRequest, HttpResponse, Joining, NewAlliance, Recipient, Role, ScopeId, StoreOp,
    SyncReport, Timestamp,
};
use rand_core::OsRng;

/// A fresh request nonce.
pub fn nonce() -> [u8; 16] {
    let mut n = [0u8; 16];
    rand_core::RngCore::fill_bytes(&mut OsRng, &mut n);
    n
}

/// The wall clock, as the core takes it.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp(u64::try_from(ms).unwrap())
}

/// An HTTP client for one relay that counts what it receives.
pub struct Http {
    base: String,
    agent: ureq::Agent,
    /// Response body bytes received so far.
    pub received: usize,
}

impl Http {
    /// A client for the relay at `base`.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            base: base.to_owned(),
            agent,
            received: 0,
        }
    }

    /// Sends one request the core built.
    pub fn send(&mut self, request: &HttpRequest) -> HttpResponse {
        let url = format!("{}{}", self.base, request.path);
        let mut response = if request.method == "GET" {
            let mut b = self.agent.get(&url);
            for (k, v) in &request.headers {
                b = b.header(*k, v);
            }
            b.call()
        } else {
            let mut b = self.agent.post(&url);
            for (k, v) in &request.headers {
                b = b.header(*k, v);
            }
            b.send(&request.body[..])
        }
        .expect("the relay answers");
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(256 * 1024 * 1024)
            .read_to_vec()
            .unwrap();
        self.received += body.len();
        HttpResponse { status, body }
    }
}

/// A device: the core's client and its own HTTP client. Store operations
/// are dropped: these devices live only in memory.
pub struct Device {
    /// The core.
    pub client: Client,
    /// Its connection, with its byte count.
    pub http: Http,
}

impl Device {
    /// A steward's device with a new alliance registered on the relay.
    pub fn steward(relay: &str, researchers: Vec<Recipient>) -> Self {
        let (client, _) = Client::create_alliance(
            NewAlliance {
                name: "Load study".into(),
                cohort: "Cohort".into(),
                relay: relay.into(),
                pseudonym: "Steward".into(),
                researchers,
                // These devices test the protocol's machinery (checkpoints,
                // forgeries, load), where a member who joins later reads
                // what came before; `tests/tests/history.rs` and the
                // `kith` tests cover cohorts read from join on.
                history: kith_core::History::Whole,
            },
            now(),
            &mut OsRng,
        )
        .unwrap();
        let mut http = Http::new(relay);
        let answer = http.send(&client.register_request(now(), &mut OsRng));
        assert_eq!(answer.status, 201);
        let mut device = Self { client, http };
        device.sync();
        device
    }

    /// A new member of `inviter`'s cohort, joined through the relay.
    pub fn invited(inviter: &mut Device, name: &str, role: Role) -> Self {
        Self::invited_keeping(inviter, name, role, &mut |_| {})
    }

    /// As [`Device::invited`], handing everything the new device asks to
    /// store (from its join and first sync) to `keep`, in order.
    pub fn invited_keeping(
        inviter: &mut Device,
        name: &str,
        role: Role,
        keep: &mut dyn FnMut(Vec<StoreOp>),
    ) -> Self {
        let (invite, publish) = inviter
            .client
            .create_invite(role, None, 60_000, now(), &mut OsRng)
            .unwrap();
        assert_eq!(inviter.http.send(&publish).status, 201);
        let mut http = Http::new(&invite.relay);
        let mut joining = Joining::new(&invite.link(), name, &mut OsRng).unwrap();
        while let Some(request) = joining.next_request(now(), &mut OsRng) {
            let answer = http.send(&request);
            joining.receive(answer, now(), &mut OsRng).unwrap();
        }
        let (client, ops) = joining.finish(now(), &mut OsRng).unwrap();
        keep(ops);
        let mut device = Self { client, http };
        device.sync_keeping(keep);
        inviter.sync();
        device
    }

    /// One full sync.
    pub fn sync(&mut self) -> SyncReport {
        self.sync_keeping(&mut |_| {})
    }

    /// One full sync, handing what it asks to store to `keep`, in order.
    pub fn sync_keeping(&mut self, keep: &mut dyn FnMut(Vec<StoreOp>)) -> SyncReport {
        self.client.sync_start();
        while let Some(request) = self.client.sync_next(now(), &mut OsRng) {
            let answer = self.http.send(&request);
            let step = self.client.sync_receive(answer, now(), &mut OsRng).unwrap();
            keep(step.ops);
            if let Some(report) = step.finished {
                return report;
            }
        }
        panic!("sync stopped before it finished");
    }

    /// Writes `count` contributions to the cohort, offline.
    pub fn write(&mut self, count: usize, tag: &str) {
        for n in 0..count {
            let text = format!("{tag} {n}: the meeting went well and we agreed what to ask next");
            self.client
                .contribute(&text, kith_core::WriteScope::Cohort, now(), &mut OsRng)
                .unwrap();
        }
    }

    /// Writes one contribution to the cohort, offline.
    pub fn write_text(&mut self, text: &str) {
        self.client
            .contribute(text, kith_core::WriteScope::Cohort, now(), &mut OsRng)
            .unwrap();
    }

    /// This device's cohort.
    pub fn cohort(&self) -> ScopeId {
        self.client.cohort().unwrap()
    }
}

impl Device {
    /// The bytes of every blob of `scope` from the start, as a device with
    /// no checkpoint would download them.
    pub fn whole_history_bytes(&mut self, scope: ScopeId) -> usize {
        let alliance = self.client.profile().alliance;
        let before = self.http.received;
        let mut after = 0;
        loop {
            let path = kith_core::api::paths::blobs_after(
                alliance,
                after,
                kith_core::api::MAX_BLOBS_PER_FETCH,
                Some(&[(scope, 0)]),
            );
            let request = self
                .client
                .sign_request("GET", path, Vec::new(), now(), &mut OsRng);
            let answer = self.http.send(&request);
            assert_eq!(answer.status, 200);
            let page: kith_core::api::BlobPage = serde_json::from_slice(&answer.body).unwrap();
            after = page.next;
            if !page.more {
                break;
            }
        }
        self.http.received - before
    }
}
