//! A device's view of its alliance: keys, documents, outbox. Every method
//! completes locally and returns the [`StoreOp`]s the driver must persist;
//! talking to the relay is in [`crate::sync`] and [`crate::join`].

use rand_core::CryptoRngCore;

use std::collections::BTreeMap;

use crate::api::{self, BlobRecord, HttpRequest, PublishInvite, RegisterAlliance, Role};
use crate::chain::{ChainHead, Gap};
use crate::document::ContributionView;
use crate::envelope::{BLOB_LABEL, INVITE_LABEL, seal};
use crate::error::Error;
use crate::ids::{AllianceId, BlobId, ContributionId, DeviceId, DocId, ScopeId};
use crate::invite::{Invite, InvitePackage};
use crate::keys::{AgeIdentity, DeviceKeys, EpochKey, Recipient};
use crate::payload::{Batch, BlobPayload, Content, Grant};
use crate::reader::Reader;
use crate::state::{Profile, Saved, StoreOp};
use crate::sync::SyncRun;
use crate::time::Timestamp;

/// The longest contribution accepted, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The longest pseudonym, in characters.
pub const MAX_PSEUDONYM_CHARS: usize = 64;

/// What a steward gives to create an alliance.
pub struct NewAlliance {
    /// The alliance's name.
    pub name: String,
    /// The relay's base URL.
    pub relay: String,
    /// The steward's pseudonym.
    pub pseudonym: String,
    /// The research team's age recipients.
    pub researchers: Vec<Recipient>,
}

/// One device.
pub struct Client {
    pub(crate) keys: DeviceKeys,
    pub(crate) profile: Profile,
    pub(crate) reader: Reader,
    own_doc: Option<DocId>,
    /// The head of this device's own chain in each scope it writes to.
    own_chains: BTreeMap<ScopeId, ChainHead>,
    pub(crate) outbox: Vec<BlobRecord>,
    pub(crate) cursor: u64,
    /// Set when a sync ended with refused blobs; see [`Saved::recheck`].
    pub(crate) recheck: bool,
    pub(crate) sync: Option<SyncRun>,
}

impl Client {
    /// A steward creates a new alliance with one cohort. The research team's
    /// key grant waits in the outbox for the first sync.
    pub fn create_alliance(
        new: NewAlliance,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Self, Vec<StoreOp>), Error> {
        let keys = DeviceKeys::generate(rng);
        let cohort_key = EpochKey::generate(ScopeId::random(rng), 0, rng);
        let profile = Profile {
            alliance: AllianceId::random(rng),
            alliance_name: check_name(&new.name, "alliance name")?,
            relay: new.relay.trim_end_matches('/').to_owned(),
            pseudonym: check_name(&new.pseudonym, "pseudonym")?,
            role: Role::Steward,
            cohort: cohort_key.scope,
            steward: keys.device_id(),
            research_recipients: new.researchers.iter().map(|r| r.to_string()).collect(),
        };
        let mut client = Self::assemble(keys, profile, vec![cohort_key.clone()]);
        if !new.researchers.is_empty() {
            let recipients: Vec<&Recipient> = new.researchers.iter().collect();
            client.queue_blob(Content::Grant(Grant::of(&cohort_key)), &recipients, rng)?;
        }
        let mut ops: Vec<StoreOp> = client
            .outbox
            .iter()
            .cloned()
            .map(StoreOp::PutBlob)
            .collect();
        ops.push(StoreOp::PutState(client.saved().encode()));
        Ok((client, ops))
    }

    pub(crate) fn assemble(keys: DeviceKeys, profile: Profile, epoch_keys: Vec<EpochKey>) -> Self {
        let reader = Reader::new(
            profile.alliance,
            epoch_keys,
            vec![keys.identity().clone()],
            vec![profile.steward],
        );
        Self {
            keys,
            profile,
            reader,
            own_doc: None,
            own_chains: BTreeMap::new(),
            outbox: Vec::new(),
            cursor: 0,
            recheck: false,
            sync: None,
        }
    }

    /// Restores a device from its state record and every blob it stored.
    /// Returns the client and how many stored blobs failed their checks
    /// (they are left out).
    pub fn load(state: &[u8], blobs: Vec<BlobRecord>) -> Result<(Self, usize), Error> {
        let saved = Saved::decode(state)?;
        let keys = DeviceKeys::import_secret(&saved.device_secret)?;
        let epoch_keys = saved
            .epoch_keys
            .iter()
            .map(|(scope, epoch, secret)| {
                let secret: &[u8; 32] = secret[..]
                    .try_into()
                    .map_err(|_| Error::CorruptState("epoch key"))?;
                Ok(EpochKey {
                    scope: *scope,
                    epoch: *epoch,
                    identity: AgeIdentity::from_secret_bytes(secret),
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let mut client = Self::assemble(keys, saved.profile, epoch_keys);
        client.own_doc = saved.own_doc;
        client.own_chains = saved
            .own_chains
            .iter()
            .map(|&(scope, seq, hash)| (scope, ChainHead { seq, hash }))
            .collect();
        client.cursor = saved.cursor;
        client.recheck = saved.recheck;
        let mut refused = 0;
        for blob in &blobs {
            if client.reader.ingest(blob).is_err() {
                refused += 1;
            }
        }
        refused += client.reader.take_late_rejections().len();
        let mut waiting = saved.outbox;
        waiting.extend(client.adopt_unsaved_batches());
        let mut by_id: BTreeMap<BlobId, BlobRecord> =
            blobs.into_iter().map(|b| (b.id, b)).collect();
        client.outbox = waiting
            .iter()
            .map(|id| by_id.remove(id))
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::CorruptState("a blob waiting to be sent is missing"))?;
        if client.own_doc.is_none() {
            client.own_doc = client.outbox.first().map(|b| b.doc);
        }
        Ok((client, refused))
    }

    /// A crash between storing a new batch and storing the state leaves a
    /// batch the state does not know. Adopt it as the chain's head, and
    /// return its id so it is sent.
    fn adopt_unsaved_batches(&mut self) -> Vec<BlobId> {
        let me = self.device_id();
        let scopes: std::collections::BTreeSet<ScopeId> =
            self.reader.epoch_keys().iter().map(|k| k.scope).collect();
        let mut adopted = Vec::new();
        for scope in scopes {
            let saved = self.own_chains.get(&scope).copied().unwrap_or_default();
            let stored = self.reader.chain_head(me, scope);
            if stored.seq > saved.seq {
                adopted.extend(self.reader.batches_after(me, scope, saved.seq));
                self.own_chains.insert(scope, stored);
            }
        }
        adopted
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.keys.device_id()
    }

    /// What this device knows of its alliance.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// How many blobs wait to be sent.
    pub fn pending_uploads(&self) -> usize {
        self.outbox.len()
    }

    /// Every contribution this device can read, oldest first.
    pub fn contributions(&self) -> Vec<ContributionView> {
        self.reader.contributions()
    }

    /// Batches known to be missing: a later batch from the same device
    /// arrived, so these were dropped or held back on the way.
    pub fn gaps(&self) -> Vec<Gap> {
        self.reader.gaps()
    }

    /// Writes a contribution to this member's document in the cohort scope.
    /// Works offline; the blob waits in the outbox.
    pub fn contribute(
        &mut self,
        text: &str,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        if text.trim().is_empty() {
            return Err(Error::EmptyText);
        }
        if text.len() > MAX_TEXT_BYTES {
            return Err(Error::TextTooLong {
                len: text.len(),
                max: MAX_TEXT_BYTES,
            });
        }
        let key = self.current_key(self.profile.cohort).ok_or(Error::Misuse(
            "this device has no key to write to the cohort (research devices read with their own key)",
        ))?;
        let (scope, epoch, recipient) = (key.scope, key.epoch, key.identity.recipient());
        let id = ContributionId::random(rng);
        let doc = *self.own_doc.get_or_insert_with(|| DocId::random(rng));
        let device = self.device_id();
        let changes =
            self.reader
                .doc_mut(doc)
                .contribute(&device, id, &self.profile.pseudonym, text, now)?;
        let head = self.own_chains.get(&scope).copied().unwrap_or_default();
        let batch = Batch {
            scope,
            epoch,
            seq: head.seq + 1,
            prev: head.hash,
            created_at: now,
            changes,
        };
        let (blob, hash) = self.seal_blob(doc, Content::Batch(batch), &[&recipient], rng)?;
        let head = ChainHead {
            seq: head.seq + 1,
            hash,
        };
        self.own_chains.insert(scope, head);
        self.reader.record_own_batch(blob.id, device, scope, head);
        self.outbox.push(blob.clone());
        Ok((
            id,
            vec![
                StoreOp::PutBlob(blob),
                StoreOp::PutState(self.saved().encode()),
            ],
        ))
    }

    /// The request that registers a newly created alliance with the relay.
    pub fn register_request(&self, now: Timestamp, rng: &mut impl CryptoRngCore) -> HttpRequest {
        let body = RegisterAlliance {
            alliance_id: self.profile.alliance,
        };
        self.sign_request("POST", api::paths::alliances(), json(&body), now, rng)
    }

    /// Makes an invite: returns the link to give the new member and the
    /// request that publishes it (it works once the relay answers 2xx).
    pub fn create_invite(
        &self,
        role: Role,
        valid_for_ms: u64,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(Invite, HttpRequest), Error> {
        if !self.profile.role.may_invite() {
            return Err(Error::Misuse("only a steward or facilitator can invite"));
        }
        if role == Role::Steward {
            return Err(Error::Misuse("an invite cannot make a steward"));
        }
        let invite = Invite::generate(
            &self.profile.relay,
            self.profile.alliance,
            self.device_id(),
            rng,
        );
        let grants = match role {
            Role::Researcher => Vec::new(),
            _ => self.reader.epoch_keys().iter().map(Grant::of).collect(),
        };
        let package = InvitePackage {
            alliance: self.profile.alliance,
            alliance_name: self.profile.alliance_name.clone(),
            invite: invite.invite,
            role,
            cohort: self.profile.cohort,
            steward: self.profile.steward,
            research_recipients: self.profile.research_recipients.clone(),
            grants,
        };
        let (package, _) = seal(
            INVITE_LABEL,
            &package,
            &self.keys,
            &[&invite.identity().recipient()],
        )?;
        let body = PublishInvite {
            invite_id: invite.invite,
            token_sha256: invite.token_sha256(),
            role,
            expires_at: now.plus_millis(valid_for_ms),
            package,
        };
        let request = self.sign_request(
            "POST",
            api::paths::invites(self.profile.alliance),
            json(&body),
            now,
            rng,
        );
        Ok((invite, request))
    }

    /// A reader for a researcher: opens key grants with their own identity
    /// (never stored on this device). Feed it every stored blob.
    pub fn research_reader(&self, identity: AgeIdentity) -> Reader {
        Reader::new(
            self.profile.alliance,
            Vec::new(),
            vec![identity],
            vec![self.profile.steward],
        )
    }

    /// Signs a request to the relay as this device.
    pub fn sign_request(
        &self,
        method: &'static str,
        path: String,
        body: Vec<u8>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> HttpRequest {
        let mut nonce = [0u8; 16];
        rng.fill_bytes(&mut nonce);
        api::signed_request(&self.keys, method, path, body, now, nonce)
    }

    pub(crate) fn saved(&self) -> Saved {
        Saved {
            profile: self.profile.clone(),
            device_secret: self.keys.export_secret(),
            epoch_keys: self
                .reader
                .epoch_keys()
                .iter()
                .map(|k| {
                    (
                        k.scope,
                        k.epoch,
                        zeroize::Zeroizing::new(k.identity.secret_bytes().to_vec()),
                    )
                })
                .collect(),
            own_doc: self.own_doc,
            own_chains: self
                .own_chains
                .iter()
                .map(|(scope, head)| (*scope, head.seq, head.hash))
                .collect(),
            outbox: self.outbox.iter().map(|b| b.id).collect(),
            cursor: self.cursor,
            recheck: self.recheck,
        }
    }

    fn current_key(&self, scope: ScopeId) -> Option<&EpochKey> {
        self.reader
            .epoch_keys()
            .iter()
            .filter(|k| k.scope == scope)
            .max_by_key(|k| k.epoch)
    }

    fn queue_blob(
        &mut self,
        content: Content,
        recipients: &[&Recipient],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), Error> {
        let (blob, _) = self.seal_blob(DocId::random(rng), content, recipients, rng)?;
        self.reader.mark_applied(blob.id);
        self.outbox.push(blob);
        Ok(())
    }

    fn seal_blob(
        &mut self,
        doc: DocId,
        content: Content,
        recipients: &[&Recipient],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(BlobRecord, [u8; 32]), Error> {
        let payload = BlobPayload {
            alliance: self.profile.alliance,
            blob: BlobId::random(rng),
            doc,
            content,
        };
        let (data, body_hash) = seal(BLOB_LABEL, &payload, &self.keys, recipients)?;
        let blob = BlobRecord {
            id: payload.blob,
            doc,
            data,
        };
        Ok((blob, body_hash))
    }
}

pub(crate) fn json<T: serde::Serialize>(body: &T) -> Vec<u8> {
    serde_json::to_vec(body).expect("request bodies encode")
}

pub(crate) fn check_name(name: &str, what: &'static str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_PSEUDONYM_CHARS {
        return Err(Error::Misuse(match what {
            "pseudonym" => "the pseudonym must be 1 to 64 characters",
            _ => "the name must be 1 to 64 characters",
        }));
    }
    Ok(name.to_owned())
}
