//! Turns blobs into readable documents: decrypt, check the signature and the
//! ids the relay showed, then apply. A blob that fails a check is reported
//! and never applied; one this device cannot open yet is kept and retried
//! when a new key arrives (blobs may come in any order).

use std::collections::{BTreeMap, HashSet};

use crate::api::BlobRecord;
use crate::document::{ContributionDoc, ContributionView};
use crate::envelope::{BLOB_LABEL, OpenError, Opened, open};
use crate::ids::{AllianceId, BlobId, DeviceId, DocId, ScopeId};
use crate::keys::{AgeIdentity, EpochKey};
use crate::payload::{BlobPayload, Content};

/// Why a blob was refused. Named so the person running sync knows what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The age file is damaged or was altered.
    #[error("blob {0} is damaged or was altered")]
    Damaged(BlobId),
    /// It opened, but the signature does not match.
    #[error("blob {0} has a signature that does not match its content")]
    BadSignature(BlobId),
    /// The signed ids differ from the ones the relay showed.
    #[error("blob {0} was moved or relabelled by the relay")]
    Relabelled(BlobId),
    /// The signed alliance is another alliance.
    #[error("blob {0} belongs to another alliance")]
    WrongAlliance(BlobId),
    /// A batch was encrypted with a key other than the one it names.
    #[error("blob {0} is encrypted with a key other than the one it names")]
    WrongKey(BlobId),
    /// A key grant came from a device not allowed to grant keys.
    #[error("blob {0} hands out a key but was not signed by a steward")]
    UntrustedGrant(BlobId),
    /// The changes inside do not decode.
    #[error("blob {0} holds changes that cannot be applied")]
    BadChanges(BlobId),
}

/// A scope and epoch: which key opened a blob.
type KeyName = (ScopeId, u32);

/// An opened blob and, for content keys, which epoch key opened it.
type OpenedBlob = (Opened<BlobPayload>, Option<KeyName>);

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Opened and applied.
    Applied,
    /// Already applied before.
    AlreadyHad,
    /// Not readable with the keys here (yet).
    Unreadable,
}

/// Documents rebuilt from blobs, with the keys that open them.
pub struct Reader {
    alliance: AllianceId,
    epoch_keys: Vec<EpochKey>,
    grant_identities: Vec<AgeIdentity>,
    grant_signers: Vec<DeviceId>,
    docs: BTreeMap<DocId, ContributionDoc>,
    applied: HashSet<BlobId>,
    unreadable: Vec<BlobRecord>,
    unreadable_ids: HashSet<BlobId>,
}

impl Reader {
    /// A reader for `alliance`. `grant_identities` open key grants (this
    /// device's identity, or a researcher's); grants are trusted only from
    /// `grant_signers`.
    pub fn new(
        alliance: AllianceId,
        epoch_keys: Vec<EpochKey>,
        grant_identities: Vec<AgeIdentity>,
        grant_signers: Vec<DeviceId>,
    ) -> Self {
        Self {
            alliance,
            epoch_keys,
            grant_identities,
            grant_signers,
            docs: BTreeMap::new(),
            applied: HashSet::new(),
            unreadable: Vec::new(),
            unreadable_ids: HashSet::new(),
        }
    }

    /// Opens and applies one blob. Errors leave every document untouched.
    pub fn ingest(&mut self, blob: &BlobRecord) -> Result<Ingested, Rejection> {
        if self.applied.contains(&blob.id) || self.unreadable_ids.contains(&blob.id) {
            return Ok(Ingested::AlreadyHad);
        }
        match self.try_open(blob)? {
            None => {
                self.unreadable_ids.insert(blob.id);
                self.unreadable.push(blob.clone());
                Ok(Ingested::Unreadable)
            }
            Some(opened) => {
                let new_key = self.apply(blob, opened)?;
                self.applied.insert(blob.id);
                if new_key {
                    self.retry_unreadable();
                }
                Ok(Ingested::Applied)
            }
        }
    }

    /// Every contribution this reader can read, oldest first.
    pub fn contributions(&self) -> Vec<ContributionView> {
        let mut all: Vec<ContributionView> =
            self.docs.values().flat_map(|d| d.contributions()).collect();
        all.sort_by(|a, b| (&a.created_at, a.id).cmp(&(&b.created_at, b.id)));
        all
    }

    /// The epoch keys this reader holds.
    pub fn epoch_keys(&self) -> &[EpochKey] {
        &self.epoch_keys
    }

    /// One document, if any blob of it was applied.
    pub fn doc_mut(&mut self, id: DocId) -> &mut ContributionDoc {
        self.docs.entry(id).or_default()
    }

    /// All documents, by id.
    pub fn docs_mut(&mut self) -> impl Iterator<Item = (&DocId, &mut ContributionDoc)> {
        self.docs.iter_mut()
    }

    /// Whether a blob was applied.
    pub fn has_applied(&self, id: &BlobId) -> bool {
        self.applied.contains(id)
    }

    /// Records a blob this device wrote itself and already applied locally.
    pub fn mark_applied(&mut self, id: BlobId) {
        self.applied.insert(id);
    }

    fn try_open(&self, blob: &BlobRecord) -> Result<Option<OpenedBlob>, Rejection> {
        for key in &self.epoch_keys {
            match open::<BlobPayload>(BLOB_LABEL, &blob.data, &[&key.identity]) {
                Ok(opened) => return Ok(Some((opened, Some((key.scope, key.epoch))))),
                Err(OpenError::NotForUs) => continue,
                Err(e) => return Err(refusal(e, blob.id)),
            }
        }
        let identities: Vec<&AgeIdentity> = self.grant_identities.iter().collect();
        match open::<BlobPayload>(BLOB_LABEL, &blob.data, &identities) {
            Ok(opened) => Ok(Some((opened, None))),
            Err(OpenError::NotForUs) => Ok(None),
            Err(e) => Err(refusal(e, blob.id)),
        }
    }

    /// Applies an opened blob; returns whether it brought a new key.
    fn apply(&mut self, blob: &BlobRecord, (opened, key): OpenedBlob) -> Result<bool, Rejection> {
        let payload = opened.body;
        if payload.alliance != self.alliance {
            return Err(Rejection::WrongAlliance(blob.id));
        }
        if payload.blob != blob.id || payload.doc != blob.doc {
            return Err(Rejection::Relabelled(blob.id));
        }
        match payload.content {
            Content::Batch(batch) => {
                let key = key.ok_or(Rejection::WrongKey(blob.id))?;
                if key != (batch.scope, batch.epoch) {
                    return Err(Rejection::WrongKey(blob.id));
                }
                self.docs
                    .entry(blob.doc)
                    .or_default()
                    .apply(&batch.changes)
                    .map_err(|_| Rejection::BadChanges(blob.id))?;
                Ok(false)
            }
            Content::Grant(grant) => {
                if !self.grant_signers.contains(&opened.signer) {
                    return Err(Rejection::UntrustedGrant(blob.id));
                }
                let key = grant.epoch_key();
                let known = self
                    .epoch_keys
                    .iter()
                    .any(|k| (k.scope, k.epoch) == (key.scope, key.epoch));
                if !known {
                    self.epoch_keys.push(key);
                }
                Ok(!known)
            }
        }
    }

    fn retry_unreadable(&mut self) {
        self.unreadable_ids.clear();
        for blob in std::mem::take(&mut self.unreadable) {
            // A blob refused now was already unreadable before; it stays out.
            let _ = self.ingest(&blob);
        }
    }
}

fn refusal(error: OpenError, blob: BlobId) -> Rejection {
    match error {
        OpenError::Damaged => Rejection::Damaged(blob),
        OpenError::BadSignature | OpenError::NotForUs => Rejection::BadSignature(blob),
    }
}
