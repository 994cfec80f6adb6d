//! # kith-core
//!
//! The pure core of Kith: device and epoch keys, signed-then-encrypted
//! envelopes (standard age v1 files), a signed membership log, Automerge
//! documents of contributions, invites, per-device hash chains, and a sans-IO
//! sync engine.
//!
//! It does no I/O. Time ([`Timestamp`]) and randomness (`rand_core`'s
//! `CryptoRngCore`) are passed in; requests to the relay come out as
//! [`HttpRequest`] values and answers go back in as [`HttpResponse`]; what to
//! persist comes out as [`StoreOp`]s. The CLI and the browser drive the same
//! code. (age draws the per-file keys it needs from the OS random source
//! itself; nothing else here does.)
//!
//! ```
//! use kith_core::{Client, NewAlliance, Timestamp, WriteScope};
//! let mut rng = rand_core::OsRng;
//! let (mut steward, _ops) = Client::create_alliance(
//!     NewAlliance {
//!         name: "Relations".into(),
//!         cohort: "Parents".into(),
//!         relay: "http://localhost:8080".into(),
//!         pseudonym: "Sam".into(),
//!         researchers: vec![],
//!         history: kith_core::History::FromJoin,
//!     },
//!     Timestamp(0),
//!     &mut rng,
//! )
//! .unwrap();
//! steward
//!     .contribute("First thoughts", WriteScope::Cohort, Timestamp(0), &mut rng)
//!     .unwrap();
//! assert_eq!(steward.contributions()[0].text, "First thoughts");
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod admin;
pub mod api;
mod chain;
mod client;
mod document;
mod encoding;
pub mod envelope;
mod error;
mod ids;
mod invite;
mod join;
mod keys;
pub mod kinds;
pub mod live;
mod log_error;
pub mod membership;
mod names;
mod outbox;
mod padding;
pub mod payload;
mod reader;
mod rejection;
pub mod relay_rules;
pub mod release;
mod research;
mod role;
mod sealing;
mod shared_items;
mod state;
mod sync;
mod sync_state;
mod time;

pub use admin::NewAlliance;
pub use api::{BlobRecord, HttpRequest, HttpResponse, Role};
pub use chain::{ChainHead, Gap};
pub use client::{Client, MAX_TEXT_BYTES, WriteScope};
pub use document::{ContributionDoc, ContributionView, rfc3339};
pub use error::Error;
pub use ids::{
    AllianceId, BlobId, ContributionId, DeviceId, DocId, InvalidId, InviteId, MemberId, ScopeId,
};
pub use invite::{Invite, InvitePackage};
pub use join::Joining;
pub use keys::{AgeIdentity, DeviceKeys, EpochKey, Recipient, fingerprint, verify};
pub use membership::History;
pub use membership::{LogError, Membership, SignedEntry};
pub use reader::{Ingested, Ingestion, Reader, Rejection};
pub use research::ResearchView;
pub use state::{Profile, StoreOp, decode_blob, encode_blob};
pub use sync_state::{SyncReport, SyncStep};
pub use time::Timestamp;
