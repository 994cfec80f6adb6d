//! A device's saved replica: what its reader has read, so that opening the
//! device decodes its documents instead of decrypting every blob again, and
//! the blobs the replica holds need not be kept.
//!
//! It is plaintext writing, so it is sealed like everything else at rest: an
//! age file to the device's own recipient (the device's secret sits in the
//! state record, which the app lock of a later issue encrypts).

use serde::{Deserialize, Serialize};

use super::{Applied, CheckpointMark, Owner, Reader, RefusedBlob};
use crate::chain::{ChainHead, Chains};
use crate::document::ContributionDoc;
use crate::envelope::{decrypt, encrypt};
use crate::error::Error;
use crate::ids::{AllianceId, BlobId, DeviceId, DocId, ScopeId};
use crate::keys::{AgeIdentity, Recipient};
use crate::kinds::Kind;

/// What the plaintext starts with: the format and its version.
const REPLICA_LABEL: &[u8] = b"kith/replica/v2\n";
/// Version 1: no refused blobs (still read).
const REPLICA_LABEL_V1: &[u8] = b"kith/replica/v1\n";

/// One document as the replica keeps it.
#[derive(Serialize, Deserialize)]
struct SavedDoc {
    id: DocId,
    scope: ScopeId,
    owner: Owner,
    kind: Kind,
    /// The whole Automerge document, saved (compressed).
    save: Vec<u8>,
}

/// A reader's state, as saved.
#[derive(Serialize, Deserialize)]
pub(crate) struct Replica {
    v1: ReplicaV1,
    /// Blobs refused, so the same bytes are not reported at every sync.
    refused: Vec<(BlobId, RefusedBlob)>,
}

/// Version 1 of the replica, the start of version 2.
#[derive(Serialize, Deserialize)]
struct ReplicaV1 {
    alliance: AllianceId,
    docs: Vec<SavedDoc>,
    heads: Vec<(DeviceId, ScopeId, u64, [u8; 32])>,
    floors: Vec<(DeviceId, ScopeId, u64)>,
    applied: Vec<(BlobId, Applied)>,
    checkpoints: Vec<(ScopeId, CheckpointMark)>,
}

impl Replica {
    /// Seals the replica to this device's recipient.
    pub fn seal(&self, device: &Recipient) -> Result<Vec<u8>, Error> {
        let mut plain = zeroize::Zeroizing::new(REPLICA_LABEL.to_vec());
        plain.extend(postcard::to_allocvec(self).map_err(|_| Error::Encrypt)?);
        encrypt(&plain, &[device])
    }

    /// Opens a sealed replica of `alliance` with this device's identity.
    pub fn open(sealed: &[u8], device: &AgeIdentity, alliance: AllianceId) -> Result<Self, Error> {
        let plain = zeroize::Zeroizing::new(
            decrypt(sealed, &[device]).map_err(|_| Error::CorruptState("the saved replica"))?,
        );
        let corrupt = |_| Error::CorruptState("the saved replica");
        let replica: Self = if let Some(body) = plain.strip_prefix(REPLICA_LABEL) {
            postcard::from_bytes(body).map_err(corrupt)?
        } else if let Some(body) = plain.strip_prefix(REPLICA_LABEL_V1) {
            Self {
                v1: postcard::from_bytes(body).map_err(corrupt)?,
                refused: Vec::new(),
            }
        } else {
            return Err(Error::CorruptState("the saved replica's format"));
        };
        if replica.v1.alliance != alliance {
            return Err(Error::CorruptState(
                "the saved replica is another alliance's",
            ));
        }
        Ok(replica)
    }
}

impl Reader {
    /// What this reader has read, to save. Held and unopened blobs are not
    /// in it: they stay stored and are read again on opening.
    pub(crate) fn replica(&mut self) -> Replica {
        let (heads, floors) = self.chains.saved();
        let docs = self
            .docs
            .iter_mut()
            .filter_map(|(id, doc)| {
                let scope = *self.doc_scopes.get(id)?;
                let (owner, kind) = *self.doc_owners.get(id)?;
                Some(SavedDoc {
                    id: *id,
                    scope,
                    owner,
                    kind,
                    save: doc.save(),
                })
            })
            .collect();
        // Key grants are left out: their keys live in the state record, so a
        // device opening from an older state record than its replica opens
        // them again and gets their keys back.
        let mut applied: Vec<_> = self
            .applied
            .iter()
            .filter(|(_, a)| !matches!(a, Applied::Grant))
            .map(|(id, a)| (*id, *a))
            .collect();
        applied.sort_by_key(|(id, _)| *id);
        let mut checkpoints: Vec<_> = self.checkpoints.iter().map(|(s, m)| (*s, *m)).collect();
        checkpoints.sort_by_key(|(scope, _)| *scope);
        let mut refused: Vec<_> = self.refused.iter().map(|(id, r)| (*id, *r)).collect();
        refused.sort_by_key(|(id, _)| *id);
        let v1 = ReplicaV1 {
            alliance: self.alliance,
            docs,
            heads: heads
                .into_iter()
                .map(|((device, scope), head)| (device, scope, head.seq, head.hash))
                .collect(),
            floors: floors
                .into_iter()
                .map(|((device, scope), floor)| (device, scope, floor))
                .collect(),
            applied,
            checkpoints,
        };
        Replica { v1, refused }
    }

    /// Takes up where a saved replica left off (the keys come from the
    /// state record, as for a new reader).
    pub(crate) fn restore(&mut self, replica: Replica) -> Result<(), Error> {
        self.refused = replica.refused.into_iter().collect();
        let replica = replica.v1;
        for saved in replica.docs {
            let doc = ContributionDoc::load(&saved.save)
                .map_err(|_| Error::CorruptState("a document in the saved replica"))?;
            self.docs.insert(saved.id, doc);
            self.doc_scopes.insert(saved.id, saved.scope);
            self.doc_owners.insert(saved.id, (saved.owner, saved.kind));
        }
        self.chains = Chains::restored(
            replica
                .heads
                .into_iter()
                .map(|(device, scope, seq, hash)| ((device, scope), ChainHead { seq, hash }))
                .collect(),
            replica
                .floors
                .into_iter()
                .map(|(device, scope, floor)| ((device, scope), floor))
                .collect(),
        );
        self.applied = replica.applied.into_iter().collect();
        self.checkpoints = replica.checkpoints.into_iter().collect();
        Ok(())
    }

    /// Writing applied since the last call: blobs a replica saved now
    /// holds, which the device may delete once it has stored that replica.
    pub(crate) fn take_superseded(&mut self) -> Vec<BlobId> {
        std::mem::take(&mut self.fresh)
    }

    /// Whether blob `id` was applied as writing (a batch or a checkpoint)
    /// that a replica holds, rather than as a key grant.
    pub(crate) fn holds_writing(&self, id: &BlobId) -> bool {
        matches!(
            self.applied.get(id),
            Some(Applied::Batch(..) | Applied::Content)
        )
    }
}
