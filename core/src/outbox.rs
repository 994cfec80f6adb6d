//! What the outbox sends now, and what it keeps on the device a while.
//!
//! A device writes with the newest key it holds for a scope. After someone
//! leaves, that key is one they hold too, until a reader of the scope
//! replaces it (the log marks the scope stale meanwhile) and the new key
//! reaches this device. Writing sealed with such a key is not sent: it
//! waits here. Once this device holds the scope's newest key, each waiting
//! blob sealed with an older one is sealed again to the newest: the same
//! signed, padded body, so its place in the writer's chain (which hashes
//! the body) does not move, and readers accept it (`reader` allows a key
//! newer than the one a body names, never an older one).
//!
//! A blob already sent once may be on the relay under the old key (its
//! answer was lost); the relay keeps that first copy when the same device
//! sends it again (`relay_rules::is_same_blob`). That window, and writing
//! sent before this device heard of the removal, is what remains; see
//! `docs/THREAT_MODEL.md`.

use zeroize::Zeroizing;

use crate::api::BlobRecord;
use crate::client::Client;
use crate::envelope::{OpenError, decrypt, encrypt};
use crate::error::Error;
use crate::ids::ScopeId;
use crate::state::StoreOp;

impl Client {
    /// Whether `scope` may be written to the relay now: no one who left
    /// holds its newest key, and this device holds that key.
    pub(crate) fn scope_is_sealed_anew(&self, scope: ScopeId) -> bool {
        let Some(info) = self.membership.scope(&scope) else {
            return false;
        };
        !info.stale
            && self.reader.newest_key(scope).map(|k| k.epoch)
                == self.membership.current_epoch(&scope)
    }

    /// Whether a waiting blob may be sent now. Key grants are sealed to
    /// the readers themselves, so they always may; writing and checkpoints
    /// only once their scope's key is one no one who left holds.
    pub(crate) fn may_send(&self, blob: &BlobRecord) -> bool {
        let sealed_to_scope = blob.seq.is_some() || blob.covers.is_some();
        !sealed_to_scope || self.scope_is_sealed_anew(blob.scope)
    }

    /// How many waiting blobs are kept on this device until a new key arrives.
    pub fn kept_for_new_key(&self) -> usize {
        self.outbox.iter().filter(|b| !self.may_send(b)).count()
    }

    /// Seals again, to their scope's newest key, the waiting blobs sealed
    /// with an older one, where this device holds the newest; returns the
    /// ops that store them (under the same ids).
    pub(crate) fn reseal_outbox(&mut self) -> Result<Vec<StoreOp>, Error> {
        let mut ops = Vec::new();
        for i in 0..self.outbox.len() {
            let blob = &self.outbox[i];
            if !(blob.seq.is_some() || blob.covers.is_some())
                || !self.scope_is_sealed_anew(blob.scope)
            {
                continue;
            }
            if let Some(resealed) = self.sealed_to_newest(blob)? {
                self.outbox[i] = resealed.clone();
                ops.push(StoreOp::PutBlob(resealed));
            }
        }
        Ok(ops)
    }

    /// `blob` sealed to its scope's newest key, if an older key of the
    /// scope seals it now. One this device cannot open is left as it is.
    fn sealed_to_newest(&self, blob: &BlobRecord) -> Result<Option<BlobRecord>, Error> {
        let Some(newest) = self.reader.newest_key(blob.scope) else {
            return Ok(None);
        };
        let older = self
            .reader
            .epoch_keys()
            .iter()
            .filter(|k| k.scope == blob.scope && k.epoch < newest.epoch);
        for key in older {
            match decrypt(&blob.data, &[&key.identity]) {
                Ok(plaintext) => {
                    let plaintext = Zeroizing::new(plaintext);
                    let data = encrypt(&plaintext, &[&newest.identity.recipient()])?;
                    return Ok(Some(BlobRecord {
                        data,
                        ..blob.clone()
                    }));
                }
                Err(OpenError::NotForUs) => continue,
                Err(_) => return Ok(None),
            }
        }
        Ok(None)
    }
}
