//! Sends the core's requests over HTTP and hands back the answers. All
//! protocol logic is in kith-core; this file only moves bytes.

use std::time::Duration;

use anyhow::{Context, Result};
use kith_core::{Client, HttpRequest, HttpResponse, SyncReport, Timestamp};
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
        let url = format!("{}{}", self.base, request.path);
        let unreachable = || {
            format!(
                "cannot reach the relay at {}; check the address and your connection, then try again",
                self.base
            )
        };
        let mut response = match request.method {
            "GET" => {
                let mut builder = self.agent.get(&url);
                for (name, value) in &request.headers {
                    builder = builder.header(*name, value);
                }
                builder.call()
            }
            _ => {
                let mut builder = self.agent.post(&url);
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

/// Runs one full sync, persisting as it goes.
pub fn sync(client: &mut Client, dir: &DataDir) -> Result<SyncReport> {
    let relay = Relay::new(&client.profile().relay);
    client.sync_start();
    while let Some(request) = client.sync_next(now(), &mut OsRng) {
        let response = relay.send(&request)?;
        let step = client.sync_receive(response)?;
        dir.apply(step.ops)?;
        if let Some(report) = step.finished {
            return Ok(report);
        }
    }
    anyhow::bail!("sync stopped before it finished; run it again")
}
