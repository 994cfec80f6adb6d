//! The device's saved state: one record, rewritten after every change. It
//! holds this device's secret keys, so drivers keep it where only this app
//! can read it (a 0600 file; the app's IndexedDB). Content is never in it:
//! contributions live only in encrypted blobs.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::api::{BlobRecord, Role};
use crate::error::Error;
use crate::ids::{AllianceId, BlobId, DeviceId, DocId, ScopeId};

const STATE_LABEL: &[u8] = b"kith/state/v2\n";

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
    /// This device's role.
    pub role: Role,
    /// The cohort scope this device writes to.
    pub cohort: ScopeId,
    /// The steward's device.
    pub steward: DeviceId,
    /// The research team's age recipients.
    pub research_recipients: Vec<String>,
}

/// The state record.
#[derive(Serialize, Deserialize)]
pub(crate) struct Saved {
    pub profile: Profile,
    pub device_secret: Zeroizing<Vec<u8>>,
    pub epoch_keys: Vec<(ScopeId, u32, Zeroizing<Vec<u8>>)>,
    pub own_doc: Option<DocId>,
    /// This device's own chain in each scope it writes to: (scope, seq, hash).
    pub own_chains: Vec<(ScopeId, u64, [u8; 32])>,
    pub outbox: Vec<BlobId>,
    pub cursor: u64,
    /// The last sync refused blobs: fetch from the start next time, in
    /// case the relay now serves them intact.
    pub recheck: bool,
}

impl Saved {
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(STATE_LABEL.to_vec());
        out.extend_from_slice(&Zeroizing::new(
            postcard::to_allocvec(self).expect("state encodes"),
        ));
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.starts_with(b"kith/state/v1\n") {
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
    /// Keep this blob (ciphertext), keyed by its id. Writing it again is harmless.
    PutBlob(BlobRecord),
    /// Replace the state record.
    PutState(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for StoreOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreOp::PutBlob(b) => write!(f, "PutBlob({})", b.id),
            StoreOp::PutState(_) => f.write_str("PutState(..)"),
        }
    }
}

/// Encodes a blob record for a local store.
pub fn encode_blob(blob: &BlobRecord) -> Vec<u8> {
    postcard::to_allocvec(&(blob.id.0, blob.doc.0, &blob.data)).expect("blob encodes")
}

/// Decodes a blob record from a local store.
pub fn decode_blob(bytes: &[u8]) -> Result<BlobRecord, Error> {
    let (id, doc, data): ([u8; 16], [u8; 16], Vec<u8>) =
        postcard::from_bytes(bytes).map_err(|_| Error::CorruptState("stored blob"))?;
    Ok(BlobRecord {
        id: BlobId(id),
        doc: DocId(doc),
        data,
    })
}
