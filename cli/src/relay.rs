//! Sends the core's requests over HTTP and hands back the answers. All
//! protocol logic is in kith-core; this file only moves bytes.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use kith_core::{
    Client, Error as CoreError, HttpRequest, HttpResponse, Invite, Joining, StoreOp, SyncReport,
    Timestamp,
};
use rand_core::OsRng;

use crate::store::DataDir;

/// The clock, in milliseconds since the epoch.
pub fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// An HTTP client for one relay.
pub struct Relay {
    base: String,
    agent: ureq::Agent,
}

impl Relay {
    /// A client for the relay at `base` (for example `http://localhost:8080`).
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    /// Sends one request.
    pub fn send(&self, request: &HttpRequest) -> Result<HttpResponse> {
        self.send_by(&self.agent, request)
    }

    /// Sends one request, giving up after `timeout` (a long poll's own bound).
    pub fn send_within(&self, request: &HttpRequest, timeout: Duration) -> Result<HttpResponse> {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .build()
            .into();
        self.send_by(&agent, request)
    }

    fn send_by(&self, agent: &ureq::Agent, request: &HttpRequest) -> Result<HttpResponse> {
        let url = format!("{}{}", self.base, request.path);
        let unreachable = || {
            format!(
                "cannot reach the relay at {}; check the address and your connection, then try again",
                self.base
            )
        };
        let mut response = match request.method {
            "GET" => {
                let mut builder = agent.get(&url);
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                builder.call()
            }
            _ => {
                let mut builder = agent.post(&url);
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                builder.send(&request.body[..])
            }
        }
        .with_context(unreachable)?;
        let status = response.status().as_u16();
        let body = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_vec()
            .with_context(unreachable)?;
        Ok(HttpResponse { status, body })
    }
}

impl Relay {
    /// Opens a long-lived answer (live updates); the body may take up to
    /// `limit` to arrive in full.
    pub fn open_stream(
        &self,
        request: &HttpRequest,
        limit: Duration,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(30)))
            .timeout_recv_body(Some(limit))
            .build()
            .into();
        let mut builder = agent.get(format!("{}{}", self.base, request.path));
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        builder.call().with_context(|| {
            format!(
                "cannot reach the relay at {}; check the address and your connection",
                self.base
            )
        })
    }
}

/// Runs a full sync, persisting as it goes. (A run that ends with batches
/// missing looks once more from the newest checkpoints by itself.)
pub fn sync(client: &mut Client, dir: &DataDir) -> Result<SyncReport> {
    let relay = Relay::new(&client.profile().relay);
    client.sync_start();
    while let Some(request) = client.sync_next(now(), &mut OsRng) {
        let response = relay.send(&request)?;
        let step = match client.sync_receive(response, now(), &mut OsRng) {
            Ok(step) => step,
            Err(CoreError::Removed) => {
                // The signed log says so (a relay's bare refusal does not
                // get here): nothing of the alliance stays on this device.
                let notice = client.removal_notice();
                dir.wipe_removed(&notice)?;
                bail!("{notice}");
            }
            Err(e) => return Err(e.into()),
        };
        dir.apply(step.ops)?;
        if let Some(report) = step.finished {
            return Ok(report);
        }
    }
    anyhow::bail!("sync stopped before it finished; run it again")
}

/// Joins through the relay named in the invite; the device is saved once joined.
pub fn join_relay(mut joining: Joining, dir: &DataDir) -> Result<Client> {
    let relay = Relay::new(joining.relay());
    while let Some(request) = joining.next_request(now(), &mut OsRng) {
        let response = relay.send(&request)?;
        joining.receive(response, now(), &mut OsRng)?;
    }
    let (client, ops) = joining.finish(now(), &mut OsRng)?;
    dir.apply(ops)?;
    Ok(client)
}

/// Publishes an invite made by `make`; if the membership moved on
/// meanwhile, syncs and makes it again (once).
pub fn publish(
    client: &mut Client,
    dir: &DataDir,
    make: impl Fn(&Client) -> Result<(Invite, HttpRequest), CoreError>,
) -> Result<Invite> {
    let relay = Relay::new(&client.profile().relay);
    for attempt in 0..2 {
        let (invite, request) = make(client)?;
        let response = relay.send(&request)?;
        if (200..300).contains(&response.status) {
            sync(client, dir)?;
            return Ok(invite);
        }
        if response.status != 409 || attempt == 1 {
            bail!(
                "the relay refused the invite: {}",
                response.refusal_message()
            );
        }
        sync(client, dir)?;
    }
    unreachable!("the loop returns")
}

/// Sends a membership change made by `make` (saved as pending first); if
/// the membership moved on meanwhile, syncs and makes it again (once).
/// Then syncs, so new keys reach everyone they should.
pub fn change(
    client: &mut Client,
    dir: &DataDir,
    make: impl Fn(&mut Client) -> Result<(HttpRequest, Vec<StoreOp>), CoreError>,
) -> Result<()> {
    let relay = Relay::new(&client.profile().relay);
    for attempt in 0..2 {
        let (request, ops) = make(client)?;
        dir.apply(ops)?;
        let response = relay.send(&request)?;
        if (200..300).contains(&response.status) {
            let ops = client.change_accepted()?;
            dir.apply(ops)?;
            sync(client, dir)?;
            return Ok(());
        }
        let ops = client.change_refused();
        dir.apply(ops)?;
        if response.status != 409 || attempt == 1 {
            bail!(
                "the relay refused the change: {}",
                response.refusal_message()
            );
        }
        sync(client, dir)?;
    }
    unreachable!("the loop returns")
}
