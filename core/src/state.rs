//! The device's saved state: one record, rewritten after every change. It
//! holds this device's secret keys, so drivers keep it where only this app
//! can read it (a 0600 file; the app's IndexedDB). Content is never in it:
//! contributions live in encrypted blobs and in the device's replica,
//! sealed to the device's own key (`reader/replica.rs`).

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::api::BlobRecord;
use crate::error::Error;
use crate::ids::{AllianceId, BlobId, DocId, MemberId, ScopeId};
use crate::keys::{AgeIdentity, EpochKey};
use crate::membership::SignedEntry;

const STATE_LABEL: &[u8] = b"kith/state/v4\n";
/// The first byte of every stored blob record: its format.
const BLOB_RECORD_VERSION: u8 = 1;

/// What a device knows about its alliance and itself. Not secret, but personal.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Profile {
    /// The alliance.
    pub alliance: AllianceId,
    /// Its name.
    pub alliance_name: String,
    /// The relay's base URL.
    pub relay: String,
    /// This member's pseudonym.
    pub pseudonym: String,
    /// This member's id in the membership log.
    pub member: MemberId,
}

/// Secret bytes in the state record: written only by [`Saved::encode`].
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub(crate) struct SecretVec(pub Zeroizing<Vec<u8>>);

impl Serialize for SecretVec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::sealing::serialize_secret::<Vec<u8>, S>(&self.0, s)
    }
}

impl std::ops::Deref for SecretVec {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

/// Epoch keys as stored: (scope, epoch, secret scalar).
pub(crate) type SavedKeys = Vec<(ScopeId, u32, SecretVec)>;

/// A membership change sent to the relay but not yet seen in the log; kept
/// so that a crash after sending never loses the keys it created.
#[derive(Serialize, Deserialize)]
pub(crate) struct SavedPending {
    pub entries: Vec<SignedEntry>,
    pub keys: SavedKeys,
    /// The grants of its new keys, each as `encode_blob` stores it.
    pub grants: Vec<Vec<u8>>,
}

/// The state record.
#[derive(Serialize, Deserialize)]
pub(crate) struct Saved {
    pub profile: Profile,
    pub device_secret: SecretVec,
    /// The invite identity this device joined with: keys rotated before the
    /// join are wrapped to it.
    pub invite_secret: Option<SecretVec>,
    pub epoch_keys: SavedKeys,
    /// Keys kept only for invites (see `Client::custody`).
    pub custody: SavedKeys,
    pub log: Vec<SignedEntry>,
    /// This device's own chain in each scope it writes to: (scope, seq, hash).
    pub own_chains: Vec<(ScopeId, u64, [u8; 32])>,
    pub outbox: Vec<BlobId>,
    pub cursor: u64,
    /// The last sync refused blobs: fetch from the start next time, in
    /// case the relay now serves them intact.
    pub recheck: bool,
    pub pending: Option<SavedPending>,
}

/// Epoch keys for the state record.
pub(crate) fn save_keys(keys: &[EpochKey]) -> SavedKeys {
    keys.iter()
        .map(|k| {
            (
                k.scope,
                k.epoch,
                SecretVec(Zeroizing::new(k.identity.secret_bytes().to_vec())),
            )
        })
        .collect()
}

/// The inverse of [`save_keys`].
pub(crate) fn load_keys(saved: &SavedKeys) -> Result<Vec<EpochKey>, Error> {
    saved
        .iter()
        .map(|(scope, epoch, secret)| {
            Ok(EpochKey {
                scope: *scope,
                epoch: *epoch,
                identity: load_identity(secret)?,
            })
        })
        .collect()
}

/// An age identity from its stored secret scalar.
pub(crate) fn load_identity(secret: &[u8]) -> Result<AgeIdentity, Error> {
    let secret: &[u8; 32] = secret
        .try_into()
        .map_err(|_| Error::CorruptState("a stored key"))?;
    Ok(AgeIdentity::from_secret_bytes(secret))
}

impl Saved {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(STATE_LABEL.to_vec());
        out.extend_from_slice(&Zeroizing::new(
            crate::sealing::sealing(|| postcard::to_allocvec(self)).expect("state encodes"),
        ));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let earlier = [
            &b"kith/state/v1\n"[..],
            b"kith/state/v2\n",
            b"kith/state/v3\n",
        ];
        if earlier.iter().any(|label| bytes.starts_with(label)) {
            return Err(Error::CorruptState(
                "it was saved by an earlier test version of Kith; join again with a new invite",
            ));
        }
        let body = bytes
            .strip_prefix(STATE_LABEL)
            .ok_or(Error::CorruptState("not a Kith state record"))?;
        postcard::from_bytes(body).map_err(|_| Error::CorruptState("state record"))
    }
}

/// What a driver must write to its local store, in order.
pub enum StoreOp {
    /// Keep this blob (ciphertext), keyed by its id, in place of any kept
    /// under that id (a waiting blob sealed again to a new key; see
    /// `outbox.rs`). Writing it again is harmless.
    PutBlob(BlobRecord),
    /// Replace the state record.
    PutState(Zeroizing<Vec<u8>>),
    /// Replace the saved replica (what this device has read, sealed to
    /// its own key): pass it back to [`crate::Client::open`].
    PutReplica(Vec<u8>),
    /// Delete this stored blob: the replica stored before it holds it.
    /// Deleting one already gone is harmless.
    DeleteBlob(BlobId),
}

impl std::fmt::Debug for StoreOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreOp::PutBlob(b) => write!(f, "PutBlob({})", b.id),
            StoreOp::PutState(_) => f.write_str("PutState(..)"),
            StoreOp::PutReplica(r) => write!(f, "PutReplica({} bytes)", r.len()),
            StoreOp::DeleteBlob(id) => write!(f, "DeleteBlob({id})"),
        }
    }
}

/// Encodes a blob record for a local store.
pub fn encode_blob(blob: &BlobRecord) -> Vec<u8> {
    let fields = (
        blob.id.0,
        blob.doc.0,
        blob.scope.0,
        blob.covers,
        blob.seq,
        &blob.data,
    );
    let mut out = vec![BLOB_RECORD_VERSION];
    out.extend(postcard::to_allocvec(&fields).expect("blob encodes"));
    out
}

/// Decodes a blob record from a local store.
pub fn decode_blob(bytes: &[u8]) -> Result<BlobRecord, Error> {
    type Stored = (
        [u8; 16],
        [u8; 16],
        [u8; 16],
        Option<u64>,
        Option<u64>,
        Vec<u8>,
    );
    let Some((&BLOB_RECORD_VERSION, fields)) = bytes.split_first() else {
        return Err(Error::CorruptState(
            "a stored blob is from an earlier test version of Kith; join again with a new invite",
        ));
    };
    let (id, doc, scope, covers, seq, data): Stored =
        postcard::from_bytes(fields).map_err(|_| Error::CorruptState("stored blob"))?;
    Ok(BlobRecord {
        id: BlobId(id),
        doc: DocId(doc),
        scope: ScopeId(scope),
        covers,
        seq,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The state record holds the device's keys: it is written only by
    /// `Saved::encode`, never by a stray serializer.
    #[test]
    fn the_state_record_serializes_only_through_its_encoder() {
        let secret = SecretVec(Zeroizing::new(vec![9; 32]));
        let refused = serde_json::to_string(&secret).unwrap_err().to_string();
        assert!(refused.contains("encrypted encoders"), "{refused}");
        let keys: SavedKeys = vec![(ScopeId([1; 16]), 0, secret.clone())];
        assert!(serde_json::to_string(&keys).is_err());
        assert!(crate::sealing::sealing(|| serde_json::to_string(&keys)).is_ok());
    }
}
