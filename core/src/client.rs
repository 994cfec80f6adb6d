//! A device's view of its alliance: keys, membership, documents, outbox.
//! Every method completes locally and returns the [`StoreOp`]s the driver
//! must persist; talking to the relay is in [`crate::sync`],
//! [`crate::join`] and [`crate::admin`].

use std::collections::BTreeMap;

use rand_core::CryptoRngCore;

use crate::api::{self, BlobRecord, HttpRequest, Role};
use crate::chain::{ChainHead, Gap};
use crate::document::{ContributionDoc, ContributionView};
use crate::envelope::{BLOB_LABEL, seal};
use crate::error::Error;
use crate::ids::{BlobId, ContributionId, DeviceId, DocId, MemberId, ScopeId};
use crate::keys::{AgeIdentity, DeviceKeys, EpochKey, Recipient};
use crate::kinds::{self, Kind};
use crate::membership::{Membership, SignedEntry};
use crate::payload::{Batch, BlobPayload, Content, Grant, Writing};
use crate::reader::{Reader, Replica};
use crate::rejection::Rejection;
use crate::state::{
    Profile, Saved, SavedPending, StoreOp, decode_blob, encode_blob, load_identity, load_keys,
    save_keys,
};
use crate::sync_state::SyncRun;
use crate::time::Timestamp;

/// The longest contribution accepted, in bytes of UTF-8.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The longest pseudonym, in characters.
pub const MAX_PSEUDONYM_CHARS: usize = 64;
/// A device that may write a scope's checkpoint writes one after this many
/// batches in the scope since the last.
pub const CHECKPOINT_EVERY: usize = 256;

/// Who may read a contribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteScope {
    /// The writer's cohort and the research team.
    Cohort,
    /// The research team only (and the writer's own devices).
    Research,
}

/// A membership change sent to the relay and not yet seen in the log.
pub(crate) struct PendingChange {
    pub entries: Vec<SignedEntry>,
    pub keys: Vec<EpochKey>,
    pub grants: Vec<BlobRecord>,
}

/// One device.
pub struct Client {
    pub(crate) keys: DeviceKeys,
    pub(crate) profile: Profile,
    pub(crate) membership: Membership,
    pub(crate) reader: Reader,
    /// The invite identity this device joined with, if any.
    invite_identity: Option<AgeIdentity>,
    /// Keys of scopes this device does not read, kept only to hand to the
    /// first members it invites (a cohort a steward opened for others).
    pub(crate) custody: Vec<EpochKey>,
    /// The head of this device's own chain in each scope it writes to.
    own_chains: BTreeMap<ScopeId, ChainHead>,
    pub(crate) outbox: Vec<BlobRecord>,
    pub(crate) cursor: u64,
    /// Set when a sync ended with refused blobs; see [`Saved::recheck`].
    pub(crate) recheck: bool,
    pub(crate) pending: Option<PendingChange>,
    pub(crate) sync: Option<SyncRun>,
    /// Stored blobs the next saved replica holds: deleted once it is stored
    /// (those still waiting to be sent, after they are sent).
    superseded: std::collections::BTreeSet<BlobId>,
}

impl Client {
    pub(crate) fn assemble(
        keys: DeviceKeys,
        profile: Profile,
        membership: Membership,
        epoch_keys: Vec<EpochKey>,
        invite_identity: Option<AgeIdentity>,
    ) -> Self {
        let reader = new_reader(&keys, &profile, invite_identity.as_ref(), epoch_keys);
        Self {
            keys,
            profile,
            membership,
            reader,
            invite_identity,
            custody: Vec::new(),
            own_chains: BTreeMap::new(),
            outbox: Vec::new(),
            cursor: 0,
            recheck: false,
            pending: None,
            sync: None,
            superseded: std::collections::BTreeSet::new(),
        }
    }

    /// Restores a device from its state record and every blob it stored
    /// (with no saved replica: each blob is opened again). Returns the
    /// client and how many stored blobs failed their checks (left out).
    pub fn load(state: &[u8], blobs: Vec<BlobRecord>) -> Result<(Self, usize), Error> {
        Self::open(state, None, blobs)
    }

    /// Restores a device from its state record, its saved replica (the last
    /// [`StoreOp::PutReplica`], if any) and the blobs it still stores: only
    /// blobs the replica does not hold are opened. A replica that cannot be
    /// read is set aside, and the next sync fetches everything again.
    /// Returns the client and how many stored blobs failed their checks.
    pub fn open(
        state: &[u8],
        replica: Option<&[u8]>,
        blobs: Vec<BlobRecord>,
    ) -> Result<(Self, usize), Error> {
        let saved = Saved::decode(state)?;
        let keys = DeviceKeys::import_secret(&saved.device_secret)?;
        let membership = Membership::replay(saved.profile.alliance, &saved.log)
            .map_err(|_| Error::CorruptState("the saved membership log"))?;
        let invite_identity = saved
            .invite_secret
            .as_deref()
            .map(load_identity)
            .transpose()?;
        let mut client = Self::assemble(
            keys,
            saved.profile,
            membership,
            load_keys(&saved.epoch_keys)?,
            invite_identity,
        );
        client.own_chains = saved
            .own_chains
            .iter()
            .map(|&(scope, seq, hash)| (scope, ChainHead { seq, hash }))
            .collect();
        client.custody = load_keys(&saved.custody)?;
        client.cursor = saved.cursor;
        client.recheck = saved.recheck;
        if let Some(sealed) = replica {
            let alliance = client.profile.alliance;
            let restored = Replica::open(sealed, client.keys.identity(), alliance)
                .and_then(|replica| client.reader.restore(replica));
            if restored.is_err() {
                // Blobs it held may be gone: read everything from the relay again.
                client.reader = client.fresh_reader(client.reader.epoch_keys().to_vec());
                client.cursor = 0;
            }
        }
        // Stored blobs the replica already holds (a crash came between
        // storing it and deleting them): deleted at the next save. Those
        // applied now are new to the reader, and the next replica holds them.
        client.superseded = blobs
            .iter()
            .map(|b| b.id)
            .filter(|id| client.reader.holds_writing(id))
            .collect();
        let refused = client
            .reader
            .ingest_all(&blobs, &client.membership)
            .refused();
        let mut waiting = saved.outbox;
        waiting.extend(client.adopt_unsaved_batches());
        let mut by_id: BTreeMap<BlobId, BlobRecord> =
            blobs.into_iter().map(|b| (b.id, b)).collect();
        let mut take = |ids: &[BlobId]| {
            ids.iter()
                .map(|id| by_id.remove(id))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::CorruptState("a blob waiting to be sent is missing"))
        };
        client.outbox = take(&waiting)?;
        if let Some(pending) = saved.pending {
            client.pending = Some(PendingChange {
                grants: pending
                    .grants
                    .iter()
                    .map(|b| decode_blob(b))
                    .collect::<Result<_, _>>()?,
                keys: load_keys(&pending.keys)?,
                entries: pending.entries,
            });
        }
        Ok((client, refused))
    }

    /// A reader holding `epoch_keys` and this device's grant identities.
    fn fresh_reader(&self, epoch_keys: Vec<EpochKey>) -> Reader {
        new_reader(
            &self.keys,
            &self.profile,
            self.invite_identity.as_ref(),
            epoch_keys,
        )
    }

    /// When writing was read or written since the last replica: the replica
    /// to store, then the stored blobs it makes redundant, to delete (except
    /// those not yet sent). A sync does this at its end, after its state
    /// record; a driver may also ask, say before the app is put away, once
    /// it has stored every op before these: a replica must never hold more
    /// than the state record beside it knows (its outbox, its own chains).
    pub fn save_replica(&mut self) -> Result<Vec<StoreOp>, Error> {
        let fresh = self.reader.take_superseded();
        let mut ops = Vec::new();
        // Only new writing needs a new replica; blobs an earlier one holds
        // (kept then because they were not sent yet) are deleted without one.
        if !fresh.is_empty() {
            let sealed = self
                .reader
                .replica()
                .seal(&self.keys.identity().recipient())?;
            ops.push(StoreOp::PutReplica(sealed));
            self.superseded.extend(fresh);
        }
        let unsent: std::collections::BTreeSet<BlobId> = self.outbox.iter().map(|b| b.id).collect();
        let (keep, delete): (Vec<BlobId>, Vec<BlobId>) = std::mem::take(&mut self.superseded)
            .into_iter()
            .partition(|id| unsent.contains(id));
        self.superseded = keep.into_iter().collect();
        ops.extend(delete.into_iter().map(StoreOp::DeleteBlob));
        Ok(ops)
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

    /// What to tell the person holding this device once the signed log
    /// shows it was removed: said before its data is deleted (the names
    /// need the keys).
    pub fn removal_notice(&self) -> String {
        let stewards: Vec<String> = self
            .membership
            .members()
            .filter(|(_, m)| m.role == Role::Steward && !m.removed)
            .filter_map(|(id, _)| self.pseudonym_of(id))
            .collect();
        let ask = if stewards.is_empty() {
            "the person who runs your group".to_owned()
        } else {
            stewards.join(" or ")
        };
        format!(
            "This device was removed from {}, so Kith deleted its keys and everything it had read \
             here. To take part again, ask {ask} for a new invite.",
            self.profile.alliance_name
        )
    }

    /// This device's id.
    pub fn device_id(&self) -> DeviceId {
        self.keys.device_id()
    }

    /// What this device knows of its alliance.
    pub fn profile(&self) -> &Profile {
        &self.profile
    }

    /// The alliance's membership, as this device last saw it.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// This member's role (as the membership log says).
    pub fn role(&self) -> Role {
        self.membership
            .member(&self.profile.member)
            .map_or(Role::Member, |m| m.role)
    }

    /// Whether this device is still in the alliance.
    pub fn is_active(&self) -> bool {
        self.membership
            .device(&self.device_id())
            .is_some_and(|d| d.active)
    }

    /// This member's cohort, if they have one.
    pub fn cohort(&self) -> Option<ScopeId> {
        self.membership
            .member(&self.profile.member)
            .and_then(|m| m.cohort)
    }

    /// What someone who joins this member's cohort later will read of it
    /// (shown beside what the member writes there).
    pub fn cohort_history(&self) -> Option<crate::membership::History> {
        self.membership.history_of(&self.cohort()?)
    }

    /// How many blobs wait to be sent.
    pub fn pending_uploads(&self) -> usize {
        self.outbox.len()
    }

    /// Every contribution this device can read, oldest first.
    pub fn contributions(&self) -> Vec<ContributionView> {
        let me = self.profile.member;
        let mut all = self.reader.contributions(&self.membership);
        for item in &mut all {
            item.mine = item.member == Some(me);
        }
        all
    }

    /// Batches known to be missing: a later batch from the same device
    /// arrived, so these were dropped or held back on the way.
    pub fn gaps(&self) -> Vec<Gap> {
        self.reader.gaps()
    }

    /// The scope a contribution of this kind goes to.
    pub fn write_scope(&self, scope: WriteScope) -> Result<ScopeId, Error> {
        let member = self
            .membership
            .member(&self.profile.member)
            .ok_or(Error::NotFound(
                "this device is not in the alliance's membership",
            ))?;
        match scope {
            WriteScope::Cohort => {
                member.cohort.ok_or(Error::NoCohort(
                    "researchers are not in a cohort; write with the research-only scope",
                ))?;
                // The newest chapter whose key is here (a key on its way
                // leaves this writing to the people the device knew of).
                self.membership
                    .cohort_scopes_read_by(&self.profile.member)
                    .into_iter()
                    .find(|scope| self.reader.newest_key(*scope).is_some())
                    .ok_or(Error::SyncFirst(
                        "this device does not hold your group's key yet; sync first",
                    ))
            }
            WriteScope::Research => member.research_scope.ok_or(Error::SyncFirst(
                "this member's research-only space is not set up yet; sync first",
            )),
        }
    }

    /// Writes a contribution to this member's document in `scope`. Works
    /// offline; the blob waits in the outbox.
    pub fn contribute(
        &mut self,
        text: &str,
        scope: WriteScope,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        let scope = self.write_scope(scope)?;
        self.write_item(Kind::Reflection, scope, text, now, rng)
    }

    /// Puts a question (a prompt) to this facilitator's or steward's cohort.
    /// Members see it from them, and answer with reflections. Works offline.
    pub fn post_prompt(
        &mut self,
        text: &str,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        if !matches!(self.role(), Role::Facilitator | Role::Steward) {
            return Err(Error::NotAllowed(
                "only a facilitator or a steward can put a question to their group",
            ));
        }
        let scope = self.write_scope(WriteScope::Cohort)?;
        self.write_item(Kind::Prompt, scope, text, now, rng)
    }

    /// Answers question `prompt`, read by `scope` (the cohort and the
    /// research team, or the research team only). Works offline.
    pub fn respond(
        &mut self,
        prompt: ContributionId,
        text: &str,
        scope: WriteScope,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        if !self.reader.holds(Kind::Prompt, prompt) {
            return Err(Error::NoSuchQuestion(prompt));
        }
        check_text(text)?;
        let scope = self.write_scope(scope)?;
        self.write_new_item(Kind::Response, scope, now, rng, |doc, device, id| {
            doc.respond(device, id, text, now, prompt)
        })
    }

    /// Suggests something for the cohort to talk about when it next meets,
    /// on the cohort's shared agenda. Works offline.
    pub fn suggest(
        &mut self,
        text: &str,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        let scope = self.write_scope(WriteScope::Cohort)?;
        self.write_item(Kind::Agenda, scope, text, now, rng)
    }

    /// Adds one item to this member's document of `kind` in `scope` (their
    /// own, or the scope's shared one).
    fn write_item(
        &mut self,
        kind: Kind,
        scope: ScopeId,
        text: &str,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        check_text(text)?;
        self.write_new_item(kind, scope, now, rng, |doc, device, id| {
            doc.contribute(device, id, text, now)
        })
    }

    fn write_new_item(
        &mut self,
        kind: Kind,
        scope: ScopeId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        add: impl FnOnce(&mut ContributionDoc, &DeviceId, ContributionId) -> Result<Vec<u8>, Error>,
    ) -> Result<(ContributionId, Vec<StoreOp>), Error> {
        self.check_active()?;
        let id = ContributionId::random(rng);
        let doc = kinds::document(kind, self.profile.member, scope);
        let device = self.device_id();
        // Checked before the document changes: nothing is half written.
        self.writing_key(scope)?;
        let changes = add(self.reader.doc_mut(doc), &device, id)?;
        let ops = self.commit_batch(doc, scope, Some(kind), changes, now, rng)?;
        Ok((id, ops))
    }

    /// Replaces the text of one of this member's own contributions. Works
    /// offline, like writing.
    pub fn edit(
        &mut self,
        id: ContributionId,
        text: &str,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<StoreOp>, Error> {
        check_text(text)?;
        self.change_own_item(id, false, now, rng, |doc, device| {
            doc.edit(device, id, text)
        })
    }

    /// Deletes one of this member's own contributions: it is gone from every
    /// list and export once devices sync (see the threat model for what the
    /// ciphertext history keeps until a checkpoint supersedes it).
    pub fn delete(
        &mut self,
        id: ContributionId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<StoreOp>, Error> {
        self.change_own_item(id, true, now, rng, |doc, device| doc.delete(device, id))
    }

    fn check_active(&self) -> Result<(), Error> {
        if self.is_active() {
            Ok(())
        } else {
            Err(Error::Removed)
        }
    }

    /// Finds item `id` among what this member may change (their own
    /// documents, their own items in shared ones and, for a moderator
    /// `removing` it, anyone's item in a shared kind that allows it),
    /// changes it with `change`, and commits the changes.
    fn change_own_item(
        &mut self,
        id: ContributionId,
        removing: bool,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
        change: impl FnOnce(&mut ContributionDoc, &DeviceId) -> Result<Option<Vec<u8>>, Error>,
    ) -> Result<Vec<StoreOp>, Error> {
        self.check_active()?;
        let device = self.device_id();
        let member = self.profile.member;
        let scopes: Vec<ScopeId> = self
            .membership
            .cohort_scopes_written_by(&member)
            .into_iter()
            .chain(self.write_scope(WriteScope::Research).ok())
            .collect();
        let (scope, kind, doc) = scopes
            .iter()
            .flat_map(|scope| {
                Kind::ALL.map(|kind| (*scope, kind, kinds::document(kind, member, *scope)))
            })
            .find(|(_, kind, doc)| self.may_change(*kind, *doc, id, removing))
            .ok_or(Error::NotYourItem(id))?;
        self.writing_key(scope)?;
        let changes = change(self.reader.doc_mut(doc), &device)?.ok_or(Error::NotYourItem(id))?;
        self.commit_batch(doc, scope, Some(kind), changes, now, rng)
    }

    /// Whether this member may change (or, `removing`, remove) item `id`
    /// of `doc`, a document of `kind` they write to.
    fn may_change(&self, kind: Kind, doc: DocId, id: ContributionId, removing: bool) -> bool {
        let Some(found) = self.reader.doc(doc).filter(|d| d.has(id)) else {
            return false;
        };
        match kind.sharing() {
            kinds::Sharing::Own => true,
            kinds::Sharing::Shared { moderators_remove } => {
                let maker = found.maker(id).and_then(|d| self.membership.device(&d));
                maker.is_some_and(|d| d.member == self.profile.member)
                    || (removing && moderators_remove && self.role().may_moderate())
            }
        }
    }

    /// The newest key this device holds for `scope`: it must read its own
    /// writing back (after a restart too). Until a new key reaches it after a
    /// removal, it writes with the one it has, and keeps that writing until
    /// it can seal it to the new key (`outbox.rs`).
    fn writing_key(&self, scope: ScopeId) -> Result<(u32, Recipient), Error> {
        let key = self.reader.newest_key(scope).ok_or(Error::SyncFirst(
            "this device does not hold the key for that space yet; sync first",
        ))?;
        Ok((key.epoch, key.identity.recipient()))
    }

    /// Seals `changes` (already in the local document) as this device's next
    /// batch in `scope`, as `Writing` of `kind` (or, with `None`, in the
    /// legacy reflection format), and queues it to send.
    fn commit_batch(
        &mut self,
        doc: DocId,
        scope: ScopeId,
        kind: Option<Kind>,
        changes: Vec<u8>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<StoreOp>, Error> {
        let (epoch, recipient) = self.writing_key(scope)?;
        let head = self.own_chains.get(&scope).copied().unwrap_or_default();
        let batch = Batch {
            scope,
            epoch,
            seq: head.seq + 1,
            prev: head.hash,
            created_at: now,
            changes,
        };
        let content = match kind {
            Some(kind) => Content::Writing(Writing { kind, batch }),
            None => Content::Batch(batch),
        };
        let (blob, hash) = self.seal_blob(doc, content, &[&recipient], rng)?;
        let head = ChainHead {
            seq: head.seq + 1,
            hash,
        };
        self.own_chains.insert(scope, head);
        let who = (
            self.profile.member,
            self.device_id(),
            kind.unwrap_or(Kind::Reflection),
        );
        self.reader.record_own_batch(blob.id, doc, who, scope, head);
        self.outbox.push(blob.clone());
        Ok(vec![
            StoreOp::PutBlob(blob),
            StoreOp::PutState(self.saved().encode()),
        ])
    }

    /// For tests of what readers refuse, and only with the `hostile-client`
    /// feature: what a changed client could send. Seals `changes` (any
    /// Automerge changes, made by anyone) as this device's next batch in its
    /// cohort, for `owner`'s document of `kind` there (with `None`, a
    /// reflection in the legacy format). Nothing is checked.
    #[cfg(feature = "hostile-client")]
    pub fn forge_batch(
        &mut self,
        owner: MemberId,
        kind: Option<Kind>,
        changes: Vec<u8>,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<StoreOp>, Error> {
        let scope = self.write_scope(WriteScope::Cohort)?;
        let doc = kinds::document(kind.unwrap_or(Kind::Reflection), owner, scope);
        self.commit_batch(doc, scope, kind, changes, now, rng)
    }

    /// For tests of what readers refuse, and only with the `hostile-client`
    /// feature: what a changed client allowed to write checkpoints could
    /// send. Takes the checkpoint of its cohort this device would write now,
    /// lets `edit` change anything in it, then seals it and queues it to send.
    #[cfg(feature = "hostile-client")]
    pub fn forge_checkpoint(
        &mut self,
        edit: impl FnOnce(&mut crate::payload::Checkpoint),
        rng: &mut impl CryptoRngCore,
    ) -> Result<(), Error> {
        let scope = self.write_scope(WriteScope::Cohort)?;
        let mut checkpoint = self
            .reader
            .checkpoint_of(
                scope,
                self.cursor,
                self.membership.current_epoch(&scope).unwrap_or_default(),
            )
            .ok_or(Error::SyncFirst("nothing to summarise yet; sync first"))?;
        edit(&mut checkpoint);
        let (_, recipient) = self.writing_key(scope)?;
        let doc = crate::ids::DocId::random(rng);
        let (blob, _) = self.seal_blob(doc, Content::Checkpoint(checkpoint), &[&recipient], rng)?;
        self.outbox.push(blob);
        Ok(())
    }

    /// For tests of what readers refuse, and only with the `hostile-client`
    /// feature: this device's copy of its cohort's document of `kind`
    /// (saved whole), for a changed client to build changes on.
    #[cfg(feature = "hostile-client")]
    pub fn saved_document(&mut self, kind: Kind) -> Result<Vec<u8>, Error> {
        let scope = self.write_scope(WriteScope::Cohort)?;
        let doc = kinds::document(kind, self.profile.member, scope);
        Ok(self.reader.doc_mut(doc).save())
    }

    /// For tests and benchmarks, and only with the `hostile-client`
    /// feature: the epoch keys this device holds.
    #[cfg(feature = "hostile-client")]
    pub fn epoch_keys(&self) -> &[EpochKey] {
        self.reader.epoch_keys()
    }

    /// A reader for a researcher: opens key grants with their own identity
    /// (never stored on this device). Feed it every stored blob, with
    /// [`Client::membership`].
    pub fn research_reader(&self, identity: AgeIdentity) -> Reader {
        Reader::new(self.profile.alliance, Vec::new(), vec![identity])
    }

    /// A signed request for live updates (server-sent events): the device
    /// syncs at `ready` and at each `changed`.
    pub fn events_request(&self, now: Timestamp, rng: &mut impl CryptoRngCore) -> HttpRequest {
        let path = api::paths::events(self.profile.alliance);
        self.sign_request("GET", path, Vec::new(), now, rng)
    }

    /// A signed long poll, for networks that hold streamed answers back: it
    /// is answered when something this device reads arrives after what it
    /// has, or empty after `wait_secs`. Either way, sync next.
    pub fn wait_request(
        &self,
        wait_secs: u64,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> HttpRequest {
        let scopes = self.fetch_scopes();
        let path = api::paths::wait_for_blobs(
            self.profile.alliance,
            self.cursor,
            scopes.as_deref(),
            wait_secs,
        );
        self.sign_request("GET", path, Vec::new(), now, rng)
    }

    /// A signed request asking the relay to delete everything a removed
    /// member wrote (a steward's, after the member withdrew).
    pub fn withdrawal_request(
        &self,
        member: MemberId,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> HttpRequest {
        let body = serde_json::to_vec(&api::Withdraw { member }).expect("serialises");
        let path = api::paths::withdrawals(self.profile.alliance);
        self.sign_request("POST", path, body, now, rng)
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
            device_secret: crate::state::SecretVec(self.keys.export_secret()),
            invite_secret: self.invite_identity.as_ref().map(|i| {
                crate::state::SecretVec(zeroize::Zeroizing::new(i.secret_bytes().to_vec()))
            }),
            epoch_keys: save_keys(self.reader.epoch_keys()),
            custody: save_keys(&self.custody),
            log: self.membership.entries().to_vec(),
            own_chains: self
                .own_chains
                .iter()
                .map(|(scope, head)| (*scope, head.seq, head.hash))
                .collect(),
            outbox: self.outbox.iter().map(|b| b.id).collect(),
            cursor: self.cursor,
            recheck: self.recheck,
            pending: self.pending.as_ref().map(|p| SavedPending {
                entries: p.entries.clone(),
                keys: save_keys(&p.keys),
                grants: p.grants.iter().map(encode_blob).collect(),
            }),
        }
    }

    /// Applies membership entries that arrived some other way than sync
    /// (tests and simulations that play the relay's part). Returns the ops
    /// to persist.
    pub fn apply_membership_entries(
        &mut self,
        entries: &[SignedEntry],
    ) -> Result<Vec<StoreOp>, Error> {
        self.apply_log(entries)?;
        Ok(vec![StoreOp::PutState(self.saved().encode())])
    }

    /// Applies membership entries fetched from the relay. Returns whether
    /// anything changed.
    pub(crate) fn apply_log(&mut self, entries: &[SignedEntry]) -> Result<bool, Error> {
        let mut changed = false;
        for entry in entries {
            let index = entry.open().map_err(Error::Membership)?.index;
            if let Some(known) = self.membership.entries().get(index as usize) {
                if known != entry {
                    return Err(Error::LogFork);
                }
                continue;
            }
            self.membership.apply(entry).map_err(Error::Membership)?;
            changed = true;
        }
        if changed {
            self.reader.membership_changed(&self.membership);
        }
        Ok(changed)
    }

    /// Grants keys this device made to whoever else reads their scopes: the
    /// research team, and other members' devices (a new chapter's). A key
    /// no one else reads stays here alone.
    pub(crate) fn grant_new_keys(
        &mut self,
        keys: &[EpochKey],
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<StoreOp>, Error> {
        let me = self.device_id();
        let membership = self.membership.clone();
        let research = !membership.research_recipients().is_empty();
        keys.iter()
            .filter(|key| research || membership.readers(key.scope).iter().any(|(d, _)| *d != me))
            .map(|key| {
                let blob = self.grant_blob(&membership, key, now, rng)?;
                self.reader.mark_applied(blob.id);
                self.outbox.push(blob.clone());
                Ok(StoreOp::PutBlob(blob))
            })
            .collect()
    }

    /// A grant of `key` to everyone who should read its scope: its reader
    /// devices, invites not yet used, and the research team.
    pub(crate) fn grant_blob(
        &mut self,
        membership: &Membership,
        key: &EpochKey,
        now: Timestamp,
        rng: &mut impl CryptoRngCore,
    ) -> Result<BlobRecord, Error> {
        let mut recipients: Vec<Recipient> = Vec::new();
        let readers = membership.readers(key.scope);
        let texts = readers
            .iter()
            .map(|(_, r)| *r)
            .chain(membership.pending_invite_recipients(key.scope, now))
            .chain(membership.research_recipients().iter().map(String::as_str));
        for text in texts {
            let recipient = Recipient::parse(text)?;
            if !recipients.contains(&recipient) {
                recipients.push(recipient);
            }
        }
        let refs: Vec<&Recipient> = recipients.iter().collect();
        let doc = crate::ids::DocId::random(rng);
        let (blob, _) = self.seal_blob(doc, Content::Grant(Grant::of(key)), &refs, rng)?;
        Ok(blob)
    }

    pub(crate) fn seal_blob(
        &mut self,
        doc: crate::ids::DocId,
        content: Content,
        recipients: &[&Recipient],
        rng: &mut impl CryptoRngCore,
    ) -> Result<(BlobRecord, [u8; 32]), Error> {
        let (scope, covers, seq) = (content.scope(), content.covers(), content.seq());
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
            scope,
            covers,
            seq,
            data,
        };
        Ok((blob, body_hash))
    }

    /// Whether this device now reads a scope missing from `before` (what
    /// [`Client::fetch_scopes`] gave earlier).
    pub(crate) fn reads_a_new_scope(&self, before: Option<&[(ScopeId, u64)]>) -> bool {
        let (Some(before), Some(now)) = (before, self.fetch_scopes()) else {
            return false;
        };
        now.iter()
            .any(|(scope, _)| !before.iter().any(|(b, _)| b == scope))
    }

    /// The scopes this device fetches, each with the relay position its
    /// newest checkpoint covers; `None` (every scope) for a researcher's
    /// device, which reads everything with the researcher's own key.
    pub(crate) fn fetch_scopes(&self) -> Option<Vec<(ScopeId, u64)>> {
        if self.role() == Role::Researcher {
            return None;
        }
        Some(
            self.membership
                .scopes_of(&self.profile.member)
                .into_iter()
                .map(|scope| (scope, self.reader.since_checkpoint(scope).1))
                .collect(),
        )
    }

    /// Writes a checkpoint of each scope this device may summarise that has
    /// had enough batches since the last; returns the ops to persist (the
    /// blobs wait in the outbox).
    pub(crate) fn due_checkpoints(
        &mut self,
        rng: &mut impl CryptoRngCore,
    ) -> Result<Vec<StoreOp>, Error> {
        let me = self.device_id();
        let mut ops = Vec::new();
        if !self.outbox.is_empty() {
            return Ok(ops);
        }
        for scope in self.membership.scopes_of(&self.profile.member) {
            let (since, _) = self.reader.since_checkpoint(scope);
            if since < CHECKPOINT_EVERY || !self.membership.may_checkpoint(&me, &scope) {
                continue;
            }
            let Some(newest) = self.membership.current_epoch(&scope) else {
                continue;
            };
            let Some(checkpoint) = self.reader.checkpoint_of(scope, self.cursor, newest) else {
                continue;
            };
            let Some(key) = self.reader.newest_key(scope) else {
                continue;
            };
            let recipient = key.identity.recipient();
            let doc = crate::ids::DocId::random(rng);
            let (blob, _) =
                self.seal_blob(doc, Content::Checkpoint(checkpoint), &[&recipient], rng)?;
            self.reader
                .record_own_checkpoint(blob.id, scope, self.cursor);
            self.outbox.push(blob.clone());
            ops.push(StoreOp::PutBlob(blob));
        }
        Ok(ops)
    }

    /// Whose app wrote a blob this device refused by the membership's
    /// rules: their pseudonym (or, unreadable, their member id). `None`
    /// when the refusal may be the relay's doing (damage, a misplacement).
    pub fn refused_writer(&self, rejection: &Rejection) -> Option<String> {
        let device = self.reader.signer_of_refused(rejection.blob())?;
        let member = self.membership.device(&device)?.member;
        Some(
            self.pseudonym_of(&member)
                .unwrap_or_else(|| format!("member {member}")),
        )
    }

    /// The pseudonym of a member, if this device can open it, as every
    /// reader shows it (a later member with a taken name as "Alex (2)").
    pub fn pseudonym_of(&self, member: &MemberId) -> Option<String> {
        self.pseudonyms().remove(member)
    }

    /// Every member's pseudonym this device can open, as readers show them.
    pub fn pseudonyms(&self) -> std::collections::HashMap<MemberId, String> {
        self.reader.shown_names(&self.membership).to_map()
    }

    /// A cohort's name, if this device can open it.
    pub fn cohort_name(&self, cohort: &ScopeId) -> Option<String> {
        let cohort = self.membership.cohort_of(cohort)?;
        let sealed = &self.membership.scope(&cohort)?.sealed_name;
        crate::names::open_name(sealed, &self.membership, self.reader.epoch_keys())
    }
}

/// A contribution's text: not empty, not too long.
/// A reader for a device: its epoch keys, and its own and (until used up)
/// its invite's identity to open grants with.
fn new_reader(
    keys: &DeviceKeys,
    profile: &Profile,
    invite_identity: Option<&AgeIdentity>,
    epoch_keys: Vec<EpochKey>,
) -> Reader {
    let mut identities = vec![keys.identity().clone()];
    identities.extend(invite_identity.cloned());
    Reader::new(profile.alliance, epoch_keys, identities).owned_by(keys.device_id())
}

fn check_text(text: &str) -> Result<(), Error> {
    if text.trim().is_empty() {
        return Err(Error::EmptyText);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(Error::TextTooLong {
            len: text.len(),
            max: MAX_TEXT_BYTES,
        });
    }
    Ok(())
}

pub(crate) fn check_name(name: &str, what: &'static str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_PSEUDONYM_CHARS {
        return Err(Error::Invalid(match what {
            "pseudonym" => "the pseudonym must be 1 to 64 characters",
            _ => "the name must be 1 to 64 characters",
        }));
    }
    Ok(name.to_owned())
}
