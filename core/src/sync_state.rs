//! The state of one sync run, and what it reports. Kept apart from the
//! machine that drives it (`sync`), so the device (`client`), which holds a
//! run, names only this lower module.

use crate::api::HttpRequest;
use crate::chain::Gap;
use crate::ids::{BlobId, ScopeId};
use crate::reader::Rejection;
use crate::state::StoreOp;

/// What one sync run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// Blobs this device sent that the relay now holds.
    pub sent: usize,
    /// New blobs received from others.
    pub received: usize,
    /// Blobs refused because they failed a check (never applied).
    pub rejected: Vec<Rejection>,
    /// Batches still missing when the run ended: a later batch from the same
    /// device arrived, these did not. The later ones are held, unread.
    pub missing: Vec<Gap>,
    /// For refused blobs whose writer's app broke the membership's rules
    /// (not damage a relay could cause): the blob and its writer's name.
    pub refused_writers: Vec<(crate::ids::BlobId, String)>,
    /// Blobs this device wrote that it keeps until its group's new key
    /// reaches it (someone left; see `outbox.rs`).
    pub kept: usize,
}

impl SyncReport {
    /// Whether the relay served everything, and all of it passed its checks.
    pub fn is_clean(&self) -> bool {
        self.rejected.is_empty() && self.missing.is_empty()
    }
}

/// The result of feeding one response.
#[derive(Debug)]
pub struct SyncStep {
    /// What to persist, in order, before sending the next request.
    pub ops: Vec<StoreOp>,
    /// Set when the run is over.
    pub finished: Option<SyncReport>,
}

pub(crate) struct SyncRun {
    /// What to ask the relay next (once the answer to the last has come).
    pub(crate) next: Step,
    /// The request sent, whose answer is awaited.
    pub(crate) waiting: Option<Waiting>,
    /// Where this run fetches blobs from (0 when looking again for missing ones).
    pub(crate) fetch_after: u64,
    /// Whether to ask for checkpoints first (a new device, or one missing something).
    pub(crate) want_checkpoints: bool,
    /// The scopes to fetch, each from its newest checkpoint; `None` for all.
    pub(crate) scopes: Option<Vec<(ScopeId, u64)>>,
    /// Whether this run already wrote the checkpoints it owed.
    pub(crate) checkpointed: bool,
    /// Whether this run already started over to look for missing batches.
    pub(crate) looked_again: bool,
    pub(crate) report: SyncReport,
}

/// The steps of a run, in order; each carries what it needs.
pub(crate) enum Step {
    /// Fetch the membership log (a page at a time).
    Log,
    /// Send a membership change this device owes (its entries are already
    /// saved as pending).
    Change(HttpRequest),
    /// Ask for the newest checkpoint of each scope.
    Checkpoints,
    /// Send the outbox (a page at a time).
    Upload,
    /// Fetch new blobs (a page at a time).
    Fetch,
}

/// A request on its way, and what its answer is for.
pub(crate) enum Waiting {
    Log,
    Change,
    Checkpoints,
    /// The blobs sent: the relay may confirm only these.
    Upload(Vec<BlobId>),
    Fetch,
}
