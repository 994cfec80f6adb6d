//! Whether a checkpoint agrees with what a reader has already seen.
//!
//! A checkpoint's writer (a facilitator, a steward, or a member for their
//! research-only space) could put into it history no one wrote. Readers
//! that start from it cannot tell; readers that already hold part of the
//! scope can, and must not let it rewrite what they hold:
//!
//! - it may not claim more of a chain than it holds: each batch holds at
//!   least one change by its device, so a chain at number N needs N changes
//!   by that device in the checkpoint's documents (a claim of 2^63 batches,
//!   which would hide every later batch of its device, is refused);
//! - it may not move this device's own chain: no one knows more of it;
//! - where it names the same place in a chain as the reader, the batch
//!   there must be the same one;
//! - it may not add changes by a device whose chain the reader has applied
//!   as far as the checkpoint claims, or further: the reader saw that
//!   history without them.

use std::collections::{BTreeMap, HashMap};

use automerge::ActorId;

use crate::chain::Chains;
use crate::document::ContributionDoc;
use crate::ids::{DeviceId, DocId, ScopeId};

/// A checkpoint's claims, as the reader checks them.
pub(super) struct Claims<'a> {
    pub scope: ScopeId,
    /// Each device's last batch the checkpoint holds: (device, seq, hash).
    pub heads: &'a [(DeviceId, u64, [u8; 32])],
    /// The checkpoint's documents, loaded.
    pub docs: &'a mut [(DocId, ContributionDoc)],
}

/// Whether `claims` contradict what a reader holds: its documents (settled),
/// its chains, and its own device (`own`, none for a researcher's export).
pub(super) fn contradicts(
    claims: Claims<'_>,
    docs: &mut BTreeMap<DocId, ContributionDoc>,
    chains: &Chains,
    own: Option<DeviceId>,
) -> bool {
    let scope = claims.scope;
    let mut held_by_checkpoint: HashMap<ActorId, u64> = HashMap::new();
    let mut new_here: Vec<ActorId> = Vec::new();
    for (doc, copy) in claims.docs.iter_mut() {
        for (actor, count) in copy.changes_per_actor() {
            *held_by_checkpoint.entry(actor).or_default() += count;
        }
        match docs.get_mut(doc) {
            // Changes waiting for others cannot be told from missing ones:
            // this document is not compared (rare; the relay can cause it
            // only by withholding).
            Some(ours) => new_here.extend(ours.actors_missing_from_here(copy).unwrap_or_default()),
            None => new_here.extend(copy.changes_per_actor().into_keys()),
        }
    }
    let mut claimed: HashMap<DeviceId, u64> = HashMap::new();
    for &(device, seq, hash) in claims.heads {
        if claimed.insert(device, seq).is_some() {
            return true;
        }
        let actor = ActorId::from(&device.0[..]);
        if held_by_checkpoint.get(&actor).copied().unwrap_or(0) < seq {
            return true;
        }
        let seen = chains.head(&(device, scope));
        if seq == seen.seq && seq > 0 && hash != seen.hash {
            return true;
        }
        if own == Some(device) && seq > seen.seq {
            return true;
        }
    }
    new_here.iter().any(|actor| {
        let Ok(bytes) = <[u8; 32]>::try_from(actor.to_bytes()) else {
            return true;
        };
        let device = DeviceId(bytes);
        let claim = claimed.get(&device).copied().unwrap_or(0);
        claim <= chains.head(&(device, scope)).seq
    })
}
