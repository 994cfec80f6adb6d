//! `kith sync --watch`: sync now, then again whenever the relay says the
//! alliance changed. Listens on the relay's event stream; where a network
//! holds streamed answers back (or with `--poll`), it long-polls instead.

use std::io::{BufRead, BufReader};
use std::time::Duration;

use anyhow::{Context, Result};
use kith_core::{Client, Error as CoreError, SyncReport};
use rand_core::OsRng;

use crate::relay::{Relay, now, sync};
use crate::store::DataDir;

/// The relay ends each stream after 10 minutes; a little more than that.
const STREAM_LIMIT: Duration = Duration::from_secs(11 * 60);
/// How long a long poll waits at the relay.
const POLL_WAIT_SECS: u64 = 25;
/// The longest pause between attempts while the relay cannot be reached.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// How the watch hears of changes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Server-sent events, falling back to long polls if the relay has none.
    Stream,
    /// Long polls only.
    Poll,
}

/// Why listening stopped.
enum Stopped {
    /// The stream ended (its time was up, or the relay restarted): listen again.
    Ended,
    /// This relay (or a proxy on the way) does not serve the stream.
    NoStream,
}

/// Watches until the device is removed or an error cannot pass; calls
/// `report` after every sync.
pub fn watch(
    client: &mut Client,
    dir: &DataDir,
    mode: Mode,
    report: &mut dyn FnMut(&SyncReport),
) -> Result<()> {
    let relay = Relay::new(&client.profile().relay);
    let mut mode = mode;
    let mut pause = Duration::from_secs(1);
    loop {
        let outcome = match mode {
            Mode::Stream => listen(&relay, client, dir, report),
            Mode::Poll => poll(&relay, client, dir, report).map(|()| Stopped::Ended),
        };
        match outcome {
            Ok(Stopped::Ended) => pause = Duration::from_secs(1),
            Ok(Stopped::NoStream) => {
                eprintln!(
                    "kith: the relay sends no live updates here; asking it every few seconds instead"
                );
                mode = Mode::Poll;
                continue;
            }
            Err(e) if is_permanent(&e) => return Err(e),
            Err(e) => {
                eprintln!("kith: {e:#}; trying again in {} s", pause.as_secs());
                pause = (pause * 2).min(MAX_BACKOFF);
            }
        }
        std::thread::sleep(pause);
    }
}

/// A refusal no retry can mend: the device was removed, or is not known.
fn is_permanent(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<CoreError>(),
        Some(CoreError::Relay {
            status: 401 | 403 | 404,
            ..
        })
    )
}

/// Syncs, and tells the caller.
fn sync_and_report(
    client: &mut Client,
    dir: &DataDir,
    report: &mut dyn FnMut(&SyncReport),
) -> Result<()> {
    let done = sync(client, dir)?;
    report(&done);
    Ok(())
}

/// Listens on the event stream, syncing at `ready` and at each `changed`.
fn listen(
    relay: &Relay,
    client: &mut Client,
    dir: &DataDir,
    report: &mut dyn FnMut(&SyncReport),
) -> Result<Stopped> {
    let request = client.events_request(now(), &mut OsRng);
    let response = relay.open_stream(&request, STREAM_LIMIT)?;
    let status = response.status().as_u16();
    let is_stream = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if status == 401 || status == 403 {
        // Let sync say why, in the relay's words.
        sync(client, dir)?;
        anyhow::bail!("the relay refused the live updates ({status})");
    }
    if status >= 500 || status == 429 {
        // Passing (a relay restarting, a busy proxy): try again after a pause.
        anyhow::bail!("the relay could not open live updates just now ({status})");
    }
    if !(200..300).contains(&status) || !is_stream {
        return Ok(Stopped::NoStream);
    }
    let lines = BufReader::new(response.into_body().into_reader()).lines();
    for line in lines {
        let line = line.context("the live updates stream broke")?;
        match line.strip_prefix("event:").map(str::trim) {
            Some("ready" | "changed") => sync_and_report(client, dir, report)?,
            Some("removed") => {
                // The sync fails with the relay's own explanation.
                sync(client, dir)?;
                anyhow::bail!("this device was removed from the alliance");
            }
            _ => {}
        }
    }
    Ok(Stopped::Ended)
}

/// Long polls: syncs, then waits at the relay for something new.
fn poll(
    relay: &Relay,
    client: &mut Client,
    dir: &DataDir,
    report: &mut dyn FnMut(&SyncReport),
) -> Result<()> {
    loop {
        sync_and_report(client, dir, report)?;
        let request = client.wait_request(POLL_WAIT_SECS, now(), &mut OsRng);
        let response = relay.send(&request)?;
        if !(200..300).contains(&response.status) {
            // The caller pauses before trying again (the next sync says
            // what is wrong, in the relay's words, if it lasts).
            anyhow::bail!("the relay did not answer the poll ({})", response.status);
        }
    }
}
