//! Turns blobs into readable documents: decrypt, check the signature, the
//! ids the relay showed and the writer's hash chain, then apply. A blob that
//! fails a check is reported and never applied; one this device cannot open
//! yet is kept and retried when a new key arrives; a batch that comes before
//! its predecessor is held until that arrives (blobs may come in any order).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::api::BlobRecord;
use crate::chain::{ChainHead, ChainId, Chains, Gap, PendingBatch, Placement};
use crate::document::{ContributionDoc, ContributionView, parse_changes};
use crate::envelope::{BLOB_LABEL, OpenError, Opened, open};
use crate::ids::{AllianceId, BlobId, DeviceId, DocId, MemberId, ScopeId};
use crate::keys::{AgeIdentity, EpochKey};
use crate::kinds::{self, Kind, Schema};
use crate::membership::Membership;
use crate::names::ShownNames;
use crate::payload::{Batch, BlobPayload, Checkpoint, Content, Writing};
pub use crate::rejection::Rejection;
use crate::shared_items;

mod agreement;
mod replica;
pub(crate) use replica::Replica;

/// Shown names, with the (log length, keys held) they were opened at.
type NamesCache = Option<((u64, usize), std::sync::Arc<ShownNames>)>;

/// Changes held back to merge together: each document's batches (blob,
/// changes), in the order they were applied.
type Deferred = BTreeMap<DocId, Vec<(BlobId, Vec<u8>)>>;

/// A scope and epoch: which key opened a blob.
type KeyName = (ScopeId, u32);

/// An opened blob and, for content keys, which epoch key opened it.
type OpenedBlob = (Opened<BlobPayload>, Option<KeyName>);

/// What a bulk ingest did.
#[derive(Debug)]
pub struct Ingestion {
    /// Each blob's outcome, in the order given.
    pub outcomes: Vec<Result<Ingested, Rejection>>,
    /// Blobs refused on the way: given now or earlier, and released or
    /// opened by this ingest (a held batch that did not link, say).
    pub late: Vec<Rejection>,
}

impl Ingestion {
    /// How many blobs were refused, given or released.
    pub fn refused(&self) -> usize {
        self.outcomes.iter().filter(|o| o.is_err()).count() + self.late.len()
    }
}

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// Opened and applied.
    Applied,
    /// Seen before (applied, held or unreadable).
    AlreadyHad,
    /// Not readable with the keys here (yet).
    Unreadable,
    /// Opened and checked, but an earlier batch from its device has not
    /// arrived; held until it does.
    Held,
    /// A checkpoint already applied holds it.
    Covered,
}

/// Whose writing a document is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Owner {
    /// One member's own: every item is theirs.
    Member(MemberId),
    /// A shared kind's: each item is the member's whose device made it.
    Shared,
}

impl Owner {
    fn of(kind: Kind, member: MemberId) -> Self {
        match kind.sharing() {
            kinds::Sharing::Own => Owner::Member(member),
            kinds::Sharing::Shared { .. } => Owner::Shared,
        }
    }
}

/// A refused blob, as remembered: its bytes' hash, and the log's length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct RefusedBlob {
    sha256: [u8; 32],
    log_length: u64,
}

impl RefusedBlob {
    fn of(blob: &BlobRecord, membership: &Membership) -> Self {
        use sha2::{Digest, Sha256};
        Self {
            sha256: Sha256::digest(&blob.data).into(),
            log_length: membership.len(),
        }
    }
}

/// What an applied blob was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Applied {
    /// A batch, at its place in its device's chain in a scope.
    Batch(DeviceId, ScopeId, u64),
    /// A checkpoint, or a batch a checkpoint already held.
    Content,
    /// A key grant. Kept by devices: a researcher's export may need it.
    Grant,
}

/// The newest checkpoint of a scope, and what came after it.
#[derive(Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
struct CheckpointMark {
    covers: u64,
    batches_since: usize,
}

/// Documents rebuilt from blobs, with the keys that open them.
pub struct Reader {
    alliance: AllianceId,
    epoch_keys: Vec<EpochKey>,
    grant_identities: Vec<AgeIdentity>,
    docs: BTreeMap<DocId, ContributionDoc>,
    /// The scope each document belongs to.
    doc_scopes: HashMap<DocId, ScopeId>,
    /// Whose writing each document is, and its kind.
    doc_owners: HashMap<DocId, (Owner, Kind)>,
    checkpoints: HashMap<ScopeId, CheckpointMark>,
    chains: Chains,
    /// Applied blobs, with the chain position of batches.
    applied: HashMap<BlobId, Applied>,
    /// Writing applied since the last [`Reader::take_superseded`]: blobs a
    /// saved replica holds, which a device need not keep.
    fresh: Vec<BlobId>,
    held: HashSet<BlobId>,
    unreadable: Vec<BlobRecord>,
    unreadable_ids: HashSet<BlobId>,
    /// Members' shown names, opened once per (log length, keys held): opening
    /// every sealed name on each listing would put an age decryption per
    /// member on the app's every refresh.
    names: std::cell::RefCell<NamesCache>,
    /// Blobs refused while applying others (a held batch that turned out
    /// not to link, or an unreadable blob opened by a new key).
    late_rejections: Vec<Rejection>,
    /// Who signed each blob refused by the rules (see `signer_of_refused`).
    refused_signers: HashMap<BlobId, DeviceId>,
    /// Each blob refused: the SHA-256 of its bytes, and the length of the
    /// membership log it was refused under. The same bytes under the same
    /// log are refused again in silence (`Reader::ingest`).
    refused: HashMap<BlobId, RefusedBlob>,
    /// Whether unopened blobs are being tried again, and whether a key
    /// found meanwhile asks for another pass.
    retrying: bool,
    /// While many blobs are ingested: the changes of applied batches, by
    /// document, to merge together at the end ([`Reader::ingest_all`]).
    deferred: Option<Deferred>,
    retry_again: bool,
    /// This device (none for a reader that writes nothing): a checkpoint
    /// may never move its own chain.
    own_device: Option<DeviceId>,
}

impl Reader {
    /// A reader for `alliance`. `grant_identities` open key grants (this
    /// device's identity, or a researcher's); a grant is trusted when its key
    /// is the one the membership log names.
    pub fn new(
        alliance: AllianceId,
        epoch_keys: Vec<EpochKey>,
        grant_identities: Vec<AgeIdentity>,
    ) -> Self {
        Self {
            alliance,
            epoch_keys,
            grant_identities,
            docs: BTreeMap::new(),
            doc_scopes: HashMap::new(),
            doc_owners: HashMap::new(),
            checkpoints: HashMap::new(),
            chains: Chains::default(),
            applied: HashMap::new(),
            fresh: Vec::new(),
            held: HashSet::new(),
            unreadable: Vec::new(),
            unreadable_ids: HashSet::new(),
            late_rejections: Vec::new(),
            refused_signers: HashMap::new(),
            refused: HashMap::new(),
            names: std::cell::RefCell::new(None),
            retrying: false,
            retry_again: false,
            deferred: None,
            own_device: None,
        }
    }

    /// The same reader, for `device`'s own use.
    pub fn owned_by(mut self, device: DeviceId) -> Self {
        self.own_device = Some(device);
        self
    }

    /// Opens, checks and applies blobs, merging the changes of each document
    /// in one go at the end: Automerge merges a change in time that grows
    /// with the document, so 10,000 batches merged one at a time take
    /// seconds, and merged together milliseconds. Returns the outcome of
    /// each blob, in order, and every blob refused on the way (a held batch
    /// that turned out not to link; an unopened blob a new key opened).
    pub fn ingest_all<'a>(
        &mut self,
        blobs: impl IntoIterator<Item = &'a BlobRecord>,
        membership: &Membership,
    ) -> Ingestion {
        let outer = self.defer();
        let outcomes = blobs
            .into_iter()
            .map(|blob| self.ingest(blob, membership))
            .collect();
        self.settle(outer);
        Ingestion {
            outcomes,
            late: self.take_late_rejections(),
        }
    }

    /// Opens, checks and applies one blob. Errors leave every document
    /// untouched. Applying one blob can release others, which can fail
    /// their checks: those are kept for [`Reader::ingest_all`] to return.
    fn ingest(
        &mut self,
        blob: &BlobRecord,
        membership: &Membership,
    ) -> Result<Ingested, Rejection> {
        if self.knows(&blob.id) {
            return Ok(Ingested::AlreadyHad);
        }
        // A blob refused before, with the same bytes and nothing new in the
        // log that could change the answer: said once, not at every sync.
        if self
            .refused
            .get(&blob.id)
            .is_some_and(|r| *r == RefusedBlob::of(blob, membership))
        {
            return Ok(Ingested::AlreadyHad);
        }
        let outcome = match self.try_open(blob) {
            Err(rejection) => Err(rejection),
            Ok(None) => Ok(self.keep_unreadable(blob)),
            Ok(Some(opened)) => {
                let signer = opened.0.signer;
                let outcome = self.apply(blob, opened, membership);
                if let Err(rejection) = &outcome
                    && !rejection.may_be_repaired()
                {
                    self.refused_signers.insert(blob.id, signer);
                }
                outcome
            }
        };
        match &outcome {
            Err(_) => {
                self.refused
                    .insert(blob.id, RefusedBlob::of(blob, membership));
            }
            Ok(_) => {
                self.refused.remove(&blob.id);
            }
        }
        outcome
    }

    /// The device whose valid signature is on a blob this reader refused
    /// by the membership's rules (not for damage or a misplacement a relay
    /// could cause): the writer whose app broke them.
    pub fn signer_of_refused(&self, blob: BlobId) -> Option<DeviceId> {
        self.refused_signers.get(&blob).copied()
    }

    /// Tries again the blobs that could not be opened or placed, after the
    /// membership log moved on (a grant may name an epoch it now knows).
    pub fn membership_changed(&mut self, membership: &Membership) {
        self.retry_unreadable(membership);
    }

    fn keep_unreadable(&mut self, blob: &BlobRecord) -> Ingested {
        self.unreadable_ids.insert(blob.id);
        self.unreadable.push(blob.clone());
        Ingested::Unreadable
    }

    /// Adds an identity to open key grants with (a researcher's, for an
    /// export), and tries again every blob that could not be opened.
    /// Returns every blob refused on the way.
    pub fn add_grant_identity(
        &mut self,
        identity: AgeIdentity,
        membership: &Membership,
    ) -> Vec<Rejection> {
        self.grant_identities.push(identity);
        self.retry_unreadable(membership);
        self.take_late_rejections()
    }

    /// Adds an epoch key (one this device made, or a checked grant).
    pub fn add_key(&mut self, key: EpochKey, membership: &Membership) {
        let known = self
            .epoch_keys
            .iter()
            .any(|k| (k.scope, k.epoch) == (key.scope, key.epoch));
        if !known {
            self.epoch_keys.push(key);
            self.retry_unreadable(membership);
        }
    }

    /// The newest key this reader holds for `scope`.
    pub fn newest_key(&self, scope: ScopeId) -> Option<&EpochKey> {
        self.epoch_keys
            .iter()
            .filter(|k| k.scope == scope)
            .max_by_key(|k| k.epoch)
    }

    /// Blobs refused as a side effect of earlier calls.
    fn take_late_rejections(&mut self) -> Vec<Rejection> {
        std::mem::take(&mut self.late_rejections)
    }

    /// Every contribution this reader can read, oldest first. The author is
    /// the member whose device signed it, named as the membership log names
    /// them; never a name written inside a document.
    pub fn contributions(&self, membership: &Membership) -> Vec<ContributionView> {
        let names = self.shown_names(membership);
        let mut all: Vec<ContributionView> = self
            .docs
            .iter()
            .filter_map(|(doc, d)| Some((d, *self.doc_owners.get(doc)?, self.doc_scopes.get(doc)?)))
            .flat_map(|(d, (owner, kind), scope)| {
                let research_only = matches!(
                    membership.scope(scope).map(|info| info.kind),
                    Some(crate::membership::ScopeKind::Research(_))
                );
                let names = &names;
                d.contributions().into_iter().filter_map(move |mut c| {
                    let member = match owner {
                        Owner::Member(member) => member,
                        Owner::Shared => membership.device(&c.device?)?.member,
                    };
                    c.scope = Some(*scope);
                    c.member = Some(member);
                    c.kind = kind;
                    c.research_only = research_only;
                    c.author = names.of_member(&member);
                    Some(c)
                })
            })
            .collect();
        all.sort_by(|a, b| (&a.created_at, a.id).cmp(&(&b.created_at, b.id)));
        all
    }

    /// Members' names as readers show them; opened again only when the log
    /// or the keys held have changed since last time.
    pub(crate) fn shown_names(&self, membership: &Membership) -> std::sync::Arc<ShownNames> {
        let key = (membership.len(), self.epoch_keys.len());
        if let Some((cached, names)) = self.names.borrow().as_ref()
            && *cached == key
        {
            return names.clone();
        }
        let names = std::sync::Arc::new(ShownNames::of(membership, self.epoch_keys()));
        *self.names.borrow_mut() = Some((key, names.clone()));
        names
    }

    /// Batches known to be missing: a later batch from the same device arrived.
    pub fn gaps(&self) -> Vec<Gap> {
        self.chains.gaps()
    }

    /// The epoch keys this reader holds.
    pub fn epoch_keys(&self) -> &[EpochKey] {
        &self.epoch_keys
    }

    /// Whether item `id` is in a document of `kind` this reader holds.
    pub fn holds(&self, kind: Kind, id: crate::ids::ContributionId) -> bool {
        self.doc_owners
            .iter()
            .filter(|(_, (_, k))| *k == kind)
            .any(|(doc, _)| self.docs.get(doc).is_some_and(|d| d.has(id)))
    }

    /// One document, if any of it is here.
    pub fn doc(&self, id: DocId) -> Option<&ContributionDoc> {
        self.docs.get(&id)
    }

    /// One document, if any blob of it was applied.
    pub fn doc_mut(&mut self, id: DocId) -> &mut ContributionDoc {
        self.docs.entry(id).or_default()
    }

    /// The last batch applied from `device` in `scope`.
    pub fn chain_head(&self, device: DeviceId, scope: ScopeId) -> ChainHead {
        self.chains.head(&(device, scope))
    }

    /// Batches applied from `device` in `scope` after sequence number `after`.
    pub fn batches_after(&self, device: DeviceId, scope: ScopeId, after: u64) -> Vec<BlobId> {
        let mut found: Vec<(u64, BlobId)> = self
            .applied
            .iter()
            .filter_map(|(id, applied)| match applied {
                Applied::Batch(d, s, seq) if (*d, *s) == (device, scope) && *seq > after => {
                    Some((*seq, *id))
                }
                _ => None,
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, id)| id).collect()
    }

    /// Whether a blob of `scope` this reader could not open may be writing
    /// it should hold (so a summary now could leave it out). Not when it
    /// holds every key of the scope up to `newest_epoch`: any real batch or
    /// checkpoint there is sealed to one of them, so what none opens is
    /// not one, and cannot hold summaries back for ever.
    fn may_miss_writing_in(&self, scope: ScopeId, newest_epoch: u32) -> bool {
        let holds_every_key = (0..=newest_epoch).all(|epoch| {
            self.epoch_keys
                .iter()
                .any(|k| k.scope == scope && k.epoch == epoch)
        });
        !holds_every_key
            && self
                .unreadable
                .iter()
                .any(|b| b.scope == scope && (b.seq.is_some() || b.covers.is_some()))
    }

    /// Records a key grant this device wrote itself.
    pub fn mark_applied(&mut self, id: BlobId) {
        self.applied.insert(id, Applied::Grant);
    }

    /// Records a batch this device wrote (its changes are already in the
    /// document) as the head of its own chain.
    pub fn record_own_batch(
        &mut self,
        id: BlobId,
        doc: DocId,
        (member, device, kind): (MemberId, DeviceId, Kind),
        scope: ScopeId,
        head: ChainHead,
    ) {
        self.doc_owners.insert(doc, (Owner::of(kind, member), kind));
        let chain = (device, scope);
        self.chains.set_head(chain, head);
        self.applied
            .insert(id, Applied::Batch(device, scope, head.seq));
        self.fresh.push(id);
        self.note_batch(doc, scope);
    }

    fn knows(&self, id: &BlobId) -> bool {
        self.applied.contains_key(id) || self.held.contains(id) || self.unreadable_ids.contains(id)
    }

    fn try_open(&self, blob: &BlobRecord) -> Result<Option<OpenedBlob>, Rejection> {
        // Only the keys of the scope the relay shows: one key exchange per
        // blob, not one per key held. A blob shown under another scope than
        // its own stays unopened, like one withheld; the gap it leaves in
        // its writer's chain is reported.
        for key in self.epoch_keys.iter().filter(|k| k.scope == blob.scope) {
            match open::<BlobPayload>(BLOB_LABEL, &blob.data, &[&key.identity]) {
                Ok(opened) => return Ok(Some((opened, Some((key.scope, key.epoch))))),
                Err(OpenError::NotForUs) => continue,
                Err(e) => return Err(refusal(e, blob.id)),
            }
        }
        // Only key grants are sealed to devices and researchers, and the
        // relay shows neither a sequence number nor a checkpoint position
        // for them. (A grant the relay mislabels is not opened: the same as
        // withholding it, which a relay can always do.)
        if blob.seq.is_some() || blob.covers.is_some() {
            return Ok(None);
        }
        let identities: Vec<&AgeIdentity> = self.grant_identities.iter().collect();
        match open::<BlobPayload>(BLOB_LABEL, &blob.data, &identities) {
            Ok(opened) => Ok(Some((opened, None))),
            Err(OpenError::NotForUs) => Ok(None),
            Err(e) => Err(refusal(e, blob.id)),
        }
    }

    fn apply(
        &mut self,
        blob: &BlobRecord,
        (opened, key): OpenedBlob,
        membership: &Membership,
    ) -> Result<Ingested, Rejection> {
        let signer = opened.signer;
        let body_hash = opened.body_hash;
        let payload = opened.body;
        if payload.alliance != self.alliance {
            return Err(Rejection::WrongAlliance(blob.id));
        }
        if payload.blob != blob.id
            || payload.doc != blob.doc
            || payload.content.scope() != blob.scope
            || payload.content.covers() != blob.covers
            || payload.content.seq() != blob.seq
        {
            return Err(Rejection::Relabelled(blob.id));
        }
        match payload.content {
            Content::Batch(batch) => {
                let writing = (Kind::Reflection, Schema::Legacy);
                self.apply_writing(blob, key, (signer, body_hash), writing, batch, membership)
            }
            Content::Writing(Writing { kind, batch }) => {
                let writing = (kind, Schema::Current);
                self.apply_writing(blob, key, (signer, body_hash), writing, batch, membership)
            }
            Content::Grant(grant) => {
                let key = grant.epoch_key();
                match membership.epoch_recipient(&key.scope, key.epoch) {
                    // The log does not name this epoch yet: try again when it does.
                    None => return Ok(self.keep_unreadable(blob)),
                    Some(named) if named != key.identity.recipient().to_string() => {
                        return Err(Rejection::UntrustedGrant(blob.id));
                    }
                    Some(_) => {}
                }
                self.applied.insert(blob.id, Applied::Grant);
                self.add_key(key, membership);
                Ok(Ingested::Applied)
            }
            Content::Checkpoint(checkpoint) => {
                if !sealed_with_at_least(key, checkpoint.scope, checkpoint.epoch) {
                    return Err(Rejection::WrongKey(blob.id));
                }
                if !membership.may_checkpoint(&signer, &checkpoint.scope) {
                    return Err(Rejection::UntrustedCheckpoint(blob.id));
                }
                self.apply_checkpoint(checkpoint, blob.id, membership)?;
                self.applied.insert(blob.id, Applied::Content);
                self.fresh.push(blob.id);
                Ok(Ingested::Applied)
            }
        }
    }

    /// Checks a batch of writing, then places it in its device's chain. The
    /// signer's member may write the scope; the document is that member's
    /// own; every change is the signing device's and fits the kind.
    fn apply_writing(
        &mut self,
        blob: &BlobRecord,
        key: Option<KeyName>,
        (signer, hash): (DeviceId, [u8; 32]),
        (kind, schema): (Kind, Schema),
        batch: Batch,
        membership: &Membership,
    ) -> Result<Ingested, Rejection> {
        if !sealed_with_at_least(key, batch.scope, batch.epoch) {
            return Err(Rejection::WrongKey(blob.id));
        }
        let member = check_writer(membership, signer, batch.scope, batch.seq, blob.id)?;
        if blob.doc != kinds::document(kind, member, batch.scope) {
            return Err(Rejection::NotOwnDocument(blob.id));
        }
        let role = membership.member(&member).map(|m| m.role);
        let scope_kind = membership.scope(&batch.scope).map(|s| s.kind);
        if !role
            .zip(scope_kind)
            .is_some_and(|(role, scope)| kinds::may_write(kind, role, &scope))
        {
            return Err(Rejection::KindNotAllowed(blob.id));
        }
        // Every batch holds at least one change: a checkpoint's claim on a
        // chain is bounded by the changes it holds (see `agreement`).
        let changes = parse_changes(&batch.changes)
            .filter(|c| !c.is_empty())
            .ok_or(Rejection::BadChanges(blob.id))?;
        let actor = automerge::ActorId::from(&signer.0[..]);
        if changes.iter().any(|change| *change.actor_id() != actor) {
            return Err(Rejection::ForeignActor(blob.id));
        }
        kinds::check(kind, schema, &changes).map_err(|_| Rejection::OffSchema(blob.id))?;
        if let kinds::Sharing::Shared { moderators_remove } = kind.sharing() {
            self.settle_doc(blob.doc);
            let doc = self.docs.get(&blob.doc);
            let existing = |key: &str| doc.is_some_and(|d| d.has_key(key));
            let writers = writers_of(membership, moderators_remove);
            shared_items::check(&changes, member, &existing, &writers)
                .map_err(|_| Rejection::NotTheirs(blob.id))?;
        }
        self.doc_owners
            .insert(blob.doc, (Owner::of(kind, member), kind));
        let chain = (signer, batch.scope);
        let pending_changes = batch.changes.clone();
        let pending = PendingBatch {
            blob: blob.id,
            doc: blob.doc,
            seq: batch.seq,
            prev: batch.prev,
            hash,
            changes: batch.changes,
        };
        match self.chains.place(chain, pending) {
            Placement::Forked => Err(Rejection::Forked(blob.id)),
            Placement::Covered => {
                // A checkpoint claimed to hold this batch. If it does not,
                // the checkpoint was false: apply the batch anyway, so no
                // one's writing is lost to it, and say so.
                // Where it is the batch the checkpoint named as the chain's
                // last, the chain goes on from it (and not from a false hash).
                self.settle_doc(blob.doc);
                let doc = self.docs.entry(blob.doc).or_default();
                let mut held = doc.holds_all(&changes);
                if !held {
                    // Automerge refuses it when the checkpoint put a false
                    // change in its place (same device, same number): then
                    // only the report below is left.
                    let _ = doc.apply(&pending_changes);
                    self.doc_scopes.insert(blob.doc, batch.scope);
                }
                let head = self.chains.head(&chain);
                if batch.seq == head.seq && hash != head.hash {
                    self.chains.set_head(
                        chain,
                        ChainHead {
                            seq: batch.seq,
                            hash,
                        },
                    );
                    self.release_held(chain);
                    held = false;
                }
                if !held {
                    self.late_rejections
                        .push(Rejection::LeftOutOfCheckpoint(blob.id));
                }
                self.applied.insert(blob.id, Applied::Content);
                self.fresh.push(blob.id);
                Ok(if held {
                    Ingested::Covered
                } else {
                    Ingested::Applied
                })
            }
            Placement::Held => {
                self.held.insert(blob.id);
                Ok(Ingested::Held)
            }
            Placement::Next(next) => {
                self.apply_batch(chain, &next)?;
                self.release_held(chain);
                Ok(Ingested::Applied)
            }
        }
    }

    /// Merges a checkpoint's documents and moves each chain it covers on to
    /// where it ends (a chain already further along stays). Each document
    /// must be one member's own, holding only changes by that member's
    /// devices, or a shared kind's whose every change keeps to its writer's
    /// own items; otherwise the whole checkpoint is refused.
    fn apply_checkpoint(
        &mut self,
        checkpoint: Checkpoint,
        blob: BlobId,
        membership: &Membership,
    ) -> Result<(), Rejection> {
        let scope = checkpoint.scope;
        let mut checked = Vec::with_capacity(checkpoint.docs.len());
        for (doc, save) in &checkpoint.docs {
            let (owner, kind) =
                owner_of(membership, doc, &scope).ok_or(Rejection::UntrustedCheckpoint(blob))?;
            let mut copy = ContributionDoc::default();
            copy.apply(save).map_err(|_| Rejection::BadChanges(blob))?;
            let fair = match (owner, kind.sharing()) {
                (Owner::Member(owner), _) => copy
                    .writers()
                    .iter()
                    .all(|actor| member_of(membership, actor) == Some(owner)),
                (Owner::Shared, kinds::Sharing::Shared { moderators_remove }) => {
                    let writers = writers_of(membership, moderators_remove);
                    shared_items::check_history(&copy.history(), &writers).is_ok()
                }
                (Owner::Shared, kinds::Sharing::Own) => false,
            };
            if !fair {
                return Err(Rejection::UntrustedCheckpoint(blob));
            }
            checked.push((*doc, (owner, kind), copy));
        }
        let mut copies: Vec<(DocId, ContributionDoc)> = Vec::with_capacity(checked.len());
        let mut owners = Vec::with_capacity(checked.len());
        for (doc, owner, copy) in checked {
            self.settle_doc(doc);
            copies.push((doc, copy));
            owners.push(owner);
        }
        let claims = agreement::Claims {
            scope,
            heads: &checkpoint.heads,
            docs: &mut copies,
        };
        if agreement::contradicts(claims, &mut self.docs, &self.chains, self.own_device) {
            return Err(Rejection::CheckpointContradicts(blob));
        }
        for ((doc, mut copy), owner) in copies.into_iter().zip(owners) {
            self.docs
                .entry(doc)
                .or_default()
                .merge(&mut copy)
                .map_err(|_| Rejection::BadChanges(blob))?;
            self.doc_scopes.insert(doc, scope);
            self.doc_owners.insert(doc, owner);
        }
        for (device, seq, hash) in checkpoint.heads {
            let chain = (device, scope);
            if self.chains.jump(chain, ChainHead { seq, hash }) {
                self.release_held(chain);
            }
        }
        let newest = self.checkpoints.entry(scope).or_default();
        if checkpoint.covers >= newest.covers {
            *newest = CheckpointMark {
                covers: checkpoint.covers,
                batches_since: 0,
            };
        }
        Ok(())
    }

    /// A checkpoint of `scope` as this reader holds it, covering relay
    /// positions up to `covers`; none while a batch of it is missing or
    /// cannot be opened (the checkpoint would leave it out).
    pub fn checkpoint_of(
        &mut self,
        scope: ScopeId,
        covers: u64,
        newest_epoch: u32,
    ) -> Option<Checkpoint> {
        if self.chains.has_gap_in(scope) || self.may_miss_writing_in(scope, newest_epoch) {
            return None;
        }
        let epoch = self.newest_key(scope)?.epoch;
        let mut in_scope: Vec<DocId> = self
            .doc_scopes
            .iter()
            .filter(|(_, s)| **s == scope)
            .map(|(doc, _)| *doc)
            .collect();
        in_scope.sort();
        let docs: Vec<(DocId, Vec<u8>)> = in_scope
            .into_iter()
            .filter_map(|doc| Some((doc, self.docs.get_mut(&doc)?.save())))
            .collect();
        let heads = self
            .chains
            .heads_in(scope)
            .into_iter()
            .map(|(device, head)| (device, head.seq, head.hash))
            .collect();
        Some(Checkpoint {
            scope,
            epoch,
            covers,
            heads,
            docs,
        })
    }

    /// Batches applied in `scope` since its newest checkpoint, and the
    /// relay position that checkpoint covers.
    pub fn since_checkpoint(&self, scope: ScopeId) -> (usize, u64) {
        self.checkpoints
            .get(&scope)
            .map_or((0, 0), |m| (m.batches_since, m.covers))
    }

    /// Records a checkpoint this device wrote itself.
    pub fn record_own_checkpoint(&mut self, id: BlobId, scope: ScopeId, covers: u64) {
        self.applied.insert(id, Applied::Content);
        self.fresh.push(id);
        self.checkpoints.insert(
            scope,
            CheckpointMark {
                covers,
                batches_since: 0,
            },
        );
    }

    /// Merges a batch that is next in its chain, and moves the chain on.
    fn apply_batch(&mut self, chain: ChainId, batch: &PendingBatch) -> Result<(), Rejection> {
        match &mut self.deferred {
            Some(waiting) => waiting
                .entry(batch.doc)
                .or_default()
                .push((batch.blob, batch.changes.clone())),
            None => self
                .docs
                .entry(batch.doc)
                .or_default()
                .apply(&batch.changes)
                .map_err(|_| Rejection::BadChanges(batch.blob))?,
        }
        self.chains.advance(chain, batch);
        self.applied
            .insert(batch.blob, Applied::Batch(chain.0, chain.1, batch.seq));
        self.fresh.push(batch.blob);
        self.note_batch(batch.doc, chain.1);
        Ok(())
    }

    /// Counts a batch towards its scope's next checkpoint.
    fn note_batch(&mut self, doc: DocId, scope: ScopeId) {
        self.doc_scopes.insert(doc, scope);
        self.checkpoints.entry(scope).or_default().batches_since += 1;
    }

    /// Applies held batches that now follow the chain's head.
    fn release_held(&mut self, chain: ChainId) {
        while let Some(ready) = self.chains.ready(&chain) {
            let outcome = ready.map_err(Rejection::Forked).and_then(|batch| {
                self.held.remove(&batch.blob);
                self.apply_batch(chain, &batch)
            });
            if let Err(rejection) = outcome {
                self.held.remove(&rejection.blob());
                self.late_rejections.push(rejection);
                return;
            }
        }
    }

    /// Starts holding batches' changes back to merge them together; returns
    /// whether they were already held (by an outer call, which merges them).
    fn defer(&mut self) -> bool {
        let outer = self.deferred.is_some();
        if !outer {
            self.deferred = Some(BTreeMap::new());
        }
        outer
    }

    /// Merges the changes held back since [`Reader::defer`] (unless an
    /// outer call will). A document whose changes will not merge together
    /// takes them one by one, and any that fails is refused on its own.
    fn settle(&mut self, outer: bool) {
        if outer {
            return;
        }
        for (doc, batches) in self.deferred.take().unwrap_or_default() {
            self.merge_into(doc, batches);
        }
    }

    /// Merges the held changes of `doc` now (a check must see it whole).
    fn settle_doc(&mut self, doc: DocId) {
        let waiting = self.deferred.as_mut().and_then(|w| w.remove(&doc));
        if let Some(batches) = waiting {
            self.merge_into(doc, batches);
        }
    }

    fn merge_into(&mut self, doc: DocId, batches: Vec<(BlobId, Vec<u8>)>) {
        let target = self.docs.entry(doc).or_default();
        let together: Vec<u8> = batches
            .iter()
            .flat_map(|(_, c)| c.iter().copied())
            .collect();
        if target.apply(&together).is_ok() {
            return;
        }
        for (blob, changes) in batches {
            if self.docs.entry(doc).or_default().apply(&changes).is_err() {
                // Its chain has moved past it; it stays out of the document.
                self.applied.remove(&blob);
                self.fresh.retain(|b| *b != blob);
                self.late_rejections.push(Rejection::BadChanges(blob));
            }
        }
    }

    /// Tries every unopened blob again. A key found on the way does not
    /// start another pass inside this one (that made opening a researcher's
    /// export quadratic); it asks for one more pass after it.
    fn retry_unreadable(&mut self, membership: &Membership) {
        if self.retrying {
            self.retry_again = true;
            return;
        }
        self.retrying = true;
        let outer = self.defer();
        loop {
            self.retry_again = false;
            self.unreadable_ids.clear();
            // Key grants first (the relay shows neither a sequence number nor
            // a checkpoint position for them), so the writing after them
            // opens in this same pass.
            let mut blobs = std::mem::take(&mut self.unreadable);
            blobs.sort_by_key(|b| b.seq.is_some() || b.covers.is_some());
            for blob in blobs {
                if let Err(rejection) = self.ingest(&blob, membership) {
                    self.late_rejections.push(rejection);
                }
            }
            if !self.retry_again {
                break;
            }
        }
        self.settle(outer);
        self.retrying = false;
    }
}

/// Whether the membership lets `signer` write batch `seq` to `scope`; if
/// so, the member it writes for.
fn check_writer(
    membership: &Membership,
    signer: DeviceId,
    scope: ScopeId,
    seq: u64,
    blob: BlobId,
) -> Result<MemberId, Rejection> {
    let device = membership
        .device(&signer)
        .ok_or(Rejection::UnknownDevice(blob))?;
    if !membership.member_writes(&device.member, &scope) {
        return Err(Rejection::NotAWriter(blob));
    }
    if !device.active {
        // What the remover had seen is kept; anything later is refused. A
        // scope the remover could not read has no cutoff: the relay's
        // refusal of removed devices is then the guard.
        if let Some(&last) = device.cutoffs.get(&scope)
            && seq > last
        {
            return Err(Rejection::AfterRemoval(blob));
        }
    }
    Ok(device.member)
}

/// Whose document in `scope` is `doc` (a member's own, or a shared kind's),
/// and of which kind.
fn owner_of(membership: &Membership, doc: &DocId, scope: &ScopeId) -> Option<(Owner, Kind)> {
    let shared = Kind::ALL
        .into_iter()
        .find(|kind| kinds::shared_document(*kind, *scope) == Some(*doc));
    if let Some(kind) = shared {
        return Some((Owner::Shared, kind));
    }
    membership.members().find_map(|(member, _)| {
        Kind::ALL
            .into_iter()
            .find(|kind| kinds::document(*kind, *member, *scope) == *doc)
            .map(|kind| (Owner::Member(*member), kind))
    })
}

/// The member whose device is `actor`.
fn member_of(membership: &Membership, actor: &automerge::ActorId) -> Option<MemberId> {
    let device = <[u8; 32]>::try_from(actor.to_bytes()).ok()?;
    membership.device(&DeviceId(device)).map(|d| d.member)
}

/// The membership, as a shared document's check asks about writers.
struct MembershipWriters<'a> {
    membership: &'a Membership,
    moderators_remove: bool,
}

fn writers_of(membership: &Membership, moderators_remove: bool) -> MembershipWriters<'_> {
    MembershipWriters {
        membership,
        moderators_remove,
    }
}

impl shared_items::Writers for MembershipWriters<'_> {
    fn member_of(&self, actor: &automerge::ActorId) -> Option<MemberId> {
        member_of(self.membership, actor)
    }

    fn may_remove_others(&self, member: MemberId) -> bool {
        self.moderators_remove
            && self
                .membership
                .member(&member)
                .is_some_and(|m| m.role.may_moderate())
    }
}

/// Whether a blob that says it was written under `epoch` of `scope` was
/// opened with that key or a newer one of the same scope: a device seals
/// writing again to a newer key before sending it (`outbox.rs`), never to
/// an older one, which people who left may hold.
fn sealed_with_at_least(key: Option<KeyName>, scope: ScopeId, epoch: u32) -> bool {
    key.is_some_and(|(s, e)| s == scope && e >= epoch)
}

fn refusal(error: OpenError, blob: BlobId) -> Rejection {
    match error {
        OpenError::Damaged => Rejection::Damaged(blob),
        OpenError::BadSignature | OpenError::NotForUs => Rejection::BadSignature(blob),
    }
}
