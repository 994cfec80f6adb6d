//! What the bindings hand to JavaScript, as Rust types. Each derives its
//! TypeScript declaration (tsify, into the generated .d.ts), so the app's
//! types follow these, and crosses as a plain object (serde-wasm-bindgen).

use kith_core::kinds::Kind;
use kith_core::{Client, ContributionView, HttpRequest, StoreOp, SyncReport, encode_blob};
use serde::Serialize;
use tsify::{Ts, Tsify};
use wasm_bindgen::JsValue;

/// A value as JavaScript gets it, typed by its generated declaration.
pub fn ts<T: Tsify + Serialize>(value: &T) -> Result<Ts<T>, JsValue> {
    value
        .into_ts()
        .map_err(|e| crate::coded("encode", &format!("could not hand a value to the app: {e}")))
}

/// Each of `values`, as [`ts`] gives it.
pub fn each<T: Tsify + Serialize>(values: &[T]) -> Result<Vec<Ts<T>>, JsValue> {
    values.iter().map(ts).collect()
}

/// A request the core built and signed; the app only sends it.
#[derive(Serialize, Tsify)]
pub struct RelayRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    #[serde(with = "serde_bytes")]
    #[tsify(type = "Uint8Array<ArrayBuffer>")]
    pub body: Vec<u8>,
}

impl From<HttpRequest> for RelayRequest {
    fn from(r: HttpRequest) -> Self {
        Self {
            method: r.method.to_owned(),
            path: r.path,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect(),
            body: r.body,
        }
    }
}

/// What the core asks the app to store, in order, in one transaction.
#[derive(Serialize, Tsify)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum StoreOpView {
    /// Keep this blob (as stored), under its id.
    Blob {
        id: String,
        #[serde(with = "serde_bytes")]
        #[tsify(type = "Uint8Array")]
        bytes: Vec<u8>,
    },
    /// Replace the state record.
    State {
        #[serde(with = "serde_bytes")]
        #[tsify(type = "Uint8Array")]
        bytes: Vec<u8>,
    },
    /// Replace the replica (what the device read, sealed to it).
    Replica {
        #[serde(with = "serde_bytes")]
        #[tsify(type = "Uint8Array")]
        bytes: Vec<u8>,
    },
    /// Delete this stored blob.
    Delete { id: String },
}

pub fn ops(ops: Vec<StoreOp>) -> Vec<StoreOpView> {
    ops.into_iter()
        .map(|op| match op {
            StoreOp::PutBlob(b) => StoreOpView::Blob {
                id: b.id.to_string(),
                bytes: encode_blob(&b),
            },
            StoreOp::PutState(s) => StoreOpView::State { bytes: s.to_vec() },
            StoreOp::PutReplica(r) => StoreOpView::Replica { bytes: r },
            StoreOp::DeleteBlob(id) => StoreOpView::Delete { id: id.to_string() },
        })
        .collect()
}

/// An item written locally: its id, and what to store.
#[derive(Serialize, Tsify)]
pub struct Written {
    pub id: String,
    pub ops: Vec<StoreOpView>,
}

/// The kind of an item.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "lowercase")]
pub enum ContributionKind {
    /// A member's reflection.
    Reflection,
    /// A question a facilitator or steward put to the group.
    Prompt,
    /// An answer to a question (`prompt` names it).
    Response,
    /// An item on the cohort's agenda for its next meeting.
    Agenda,
}

/// One item a device can read.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Contribution {
    pub id: String,
    pub author: String,
    pub text: String,
    pub created_at: String,
    /// Only the research team (and the writer's own devices) may read it.
    pub research_only: bool,
    /// This member wrote it: they may edit or delete it.
    pub mine: bool,
    pub kind: ContributionKind,
    /// For an answer, the id of the question it answers.
    #[tsify(optional)]
    pub prompt: Option<String>,
}

pub fn contribution(c: &ContributionView) -> Contribution {
    Contribution {
        id: c.id.to_string(),
        author: c.author.clone(),
        text: c.text.clone(),
        created_at: c.created_at.clone(),
        research_only: c.research_only,
        mine: c.mine,
        kind: match c.kind {
            Kind::Prompt => ContributionKind::Prompt,
            Kind::Response => ContributionKind::Response,
            Kind::Agenda => ContributionKind::Agenda,
            _ => ContributionKind::Reflection,
        },
        prompt: c.prompt.map(|p| p.to_string()),
    }
}

/// Who this device is, in which alliance.
#[derive(Serialize, Tsify)]
#[serde(rename_all = "camelCase")]
pub struct Profile {
    pub alliance_id: String,
    pub alliance_name: String,
    pub pseudonym: String,
    pub role: String,
    pub device_id: String,
    pub relay: String,
    /// The member's cohort's name (researchers have none).
    #[tsify(optional)]
    pub cohort: Option<String>,
    /// Whether someone who joins the member's cohort later reads what was
    /// written there before (the steward chose it for the cohort).
    #[tsify(optional)]
    pub newcomers_read_earlier: Option<bool>,
}

pub fn profile(client: &Client) -> Profile {
    let p = client.profile();
    Profile {
        alliance_id: p.alliance.to_string(),
        alliance_name: p.alliance_name.clone(),
        pseudonym: p.pseudonym.clone(),
        role: client.role().as_str().to_owned(),
        device_id: client.device_id().to_string(),
        relay: p.relay.clone(),
        cohort: client.cohort().and_then(|c| client.cohort_name(&c)),
        newcomers_read_earlier: client
            .cohort_history()
            .map(|h| h == kith_core::History::Whole),
    }
}

/// What one sync run did.
#[derive(Serialize, Tsify)]
pub struct Report {
    pub sent: u32,
    pub received: u32,
    /// Blobs refused, each as a sentence.
    pub rejected: Vec<String>,
    /// Batches still missing, each as a sentence.
    pub missing: Vec<String>,
}

pub fn report(r: &SyncReport) -> Report {
    Report {
        sent: u32::try_from(r.sent).unwrap_or(u32::MAX),
        received: u32::try_from(r.received).unwrap_or(u32::MAX),
        rejected: r.rejected.iter().map(ToString::to_string).collect(),
        missing: r.missing.iter().map(ToString::to_string).collect(),
    }
}

/// What to store after one answer, and, when the run is over, its report.
#[derive(Serialize, Tsify)]
pub struct SyncStep {
    pub ops: Vec<StoreOpView>,
    #[tsify(optional)]
    pub finished: Option<Report>,
}
