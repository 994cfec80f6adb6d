//! What is inside a relay blob once it is decrypted and its signature checked.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::Zeroizing;

use crate::ids::{AllianceId, BlobId, DeviceId, DocId, ScopeId};
use crate::keys::{AgeIdentity, EpochKey};
use crate::kinds::Kind;
use crate::time::Timestamp;

/// The signed payload of every relay blob. It repeats the ids the relay sees
/// (alliance, blob, document), so the relay cannot move a blob elsewhere.
#[derive(Serialize, Deserialize)]
pub struct BlobPayload {
    /// The alliance it belongs to.
    pub alliance: AllianceId,
    /// The blob's id, as the relay stores it.
    pub blob: BlobId,
    /// The document it belongs to, as the relay stores it.
    pub doc: DocId,
    /// What it carries.
    pub content: Content,
}

/// The kinds of blob.
#[derive(Serialize, Deserialize)]
pub enum Content {
    /// Reflections as written before document kinds existed: Automerge
    /// changes from one device to its member's reflection document. Still
    /// read (as [`Kind::Reflection`] under its legacy schema); no longer written.
    Batch(Batch),
    /// An epoch key, wrapped to the readers of a scope (for example the research team).
    Grant(Grant),
    /// A scope's documents as of a relay position, so a new device need not
    /// fetch every batch before it.
    Checkpoint(Checkpoint),
    /// Automerge changes from one device to one document of a named kind.
    Writing(Writing),
}

/// A batch for a document of a named kind.
#[derive(Serialize, Deserialize)]
pub struct Writing {
    /// The document's kind: what its changes may hold.
    pub kind: Kind,
    /// The changes, in the signer's chain.
    pub batch: Batch,
}

impl Content {
    /// The scope it belongs to (the relay shows it in the clear).
    pub fn scope(&self) -> ScopeId {
        match self {
            Content::Batch(b) | Content::Writing(Writing { batch: b, .. }) => b.scope,
            Content::Grant(g) => g.scope,
            Content::Checkpoint(c) => c.scope,
        }
    }

    /// For a checkpoint, the relay position it covers.
    pub fn covers(&self) -> Option<u64> {
        match self {
            Content::Checkpoint(c) => Some(c.covers),
            _ => None,
        }
    }

    /// For a batch, its number in its device's chain.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Content::Batch(b) | Content::Writing(Writing { batch: b, .. }) => Some(b.seq),
            _ => None,
        }
    }
}

/// Every document of one scope, saved, with the device chains it covers.
#[derive(Serialize, Deserialize)]
pub struct Checkpoint {
    /// The scope.
    pub scope: ScopeId,
    /// The epoch of the key it was written under (it may be sent sealed
    /// to a newer key of the scope, never an older one; `outbox.rs`).
    pub epoch: u32,
    /// The relay position up to which it holds the scope's batches.
    pub covers: u64,
    /// For each device that wrote in the scope: its last batch included (seq, hash).
    pub heads: Vec<(DeviceId, u64, [u8; 32])>,
    /// Each document of the scope, as an Automerge save.
    pub docs: Vec<(DocId, Vec<u8>)>,
}

/// One flush of Automerge changes from one device.
#[derive(Serialize, Deserialize)]
pub struct Batch {
    /// The scope whose epoch key encrypts it.
    pub scope: ScopeId,
    /// The epoch of the key it was written under (it may be sent sealed to
    /// a newer key of the scope, never an older one; `outbox.rs`).
    pub epoch: u32,
    /// This device's batch counter, from 1, across all its documents.
    pub seq: u64,
    /// SHA-256 of this device's previous batch body (zeros for the first).
    pub prev: [u8; 32],
    /// When the device made it (the device's clock; informational).
    pub created_at: Timestamp,
    /// Automerge changes (the incremental save format).
    pub changes: Vec<u8>,
}

/// An epoch key, given to whoever can open this blob.
#[derive(Serialize, Deserialize)]
pub struct Grant {
    /// The scope it opens.
    pub scope: ScopeId,
    /// The epoch.
    pub epoch: u32,
    /// The epoch identity's secret scalar.
    pub key: SecretKeyBytes,
}

impl Grant {
    /// The grant that hands over `key`.
    pub fn of(key: &EpochKey) -> Self {
        Self {
            scope: key.scope,
            epoch: key.epoch,
            key: SecretKeyBytes(key.identity.secret_bytes()),
        }
    }

    /// The epoch key it carries.
    pub fn epoch_key(&self) -> EpochKey {
        EpochKey {
            scope: self.scope,
            epoch: self.epoch,
            identity: AgeIdentity::from_secret_bytes(&self.key.0),
        }
    }
}

/// 32 secret bytes that travel only inside an encrypted payload. Zeroized on
/// drop; no `Debug`; they serialize only inside Kith's encrypted encoders
/// (`sealing`), so a grant or package cannot be written out in the clear.
pub struct SecretKeyBytes(pub(crate) Zeroizing<[u8; 32]>);

impl SecretKeyBytes {
    /// The bytes themselves, for a caller that means to handle a secret
    /// (test vectors). Named so it stands out in review.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl Serialize for SecretKeyBytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::sealing::serialize_secret::<[u8; 32], S>(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for SecretKeyBytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes: [u8; 32] = Deserialize::deserialize(d)?;
        Ok(Self(Zeroizing::new(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ScopeId;

    /// A grant (so an invite package, which holds grants) cannot be written
    /// out in the clear: only the envelope that encrypts it writes its key.
    #[test]
    fn a_grant_serializes_only_inside_the_envelope() {
        let key = EpochKey::generate(ScopeId([1; 16]), 0, &mut rand_core::OsRng);
        let grant = Grant::of(&key);
        let refused = serde_json::to_string(&grant).unwrap_err().to_string();
        assert!(refused.contains("encrypted encoders"), "{refused}");
        assert!(postcard::to_allocvec(&grant).is_err());
        let sealed = crate::sealing::sealing(|| postcard::to_allocvec(&grant)).unwrap();
        assert!(
            sealed
                .windows(32)
                .any(|w| w == key.identity.secret_bytes().as_slice()),
            "inside the encoder the key is written as before"
        );
    }
}
