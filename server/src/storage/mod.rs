//! The storage trait: opaque ids and bytes, nothing the relay could read.

mod group;
mod postgres;
mod shared;
mod sqlite;

use std::future::Future;

use tokio::sync::broadcast;

use kith_core::{
    AllianceId, BlobRecord, DeviceId, InviteId, Membership, Role, ScopeId, SignedEntry, Timestamp,
    membership::Cutoff,
};

pub use postgres::PostgresStorage;
pub use sqlite::SqliteStorage;

/// A storage failure. Its detail goes to the log, never to a client.
#[derive(Debug, thiserror::Error)]
#[error("storage failed: {0}")]
pub struct StorageError(#[from] pub sqlx::Error);

/// An invite as stored.
#[derive(Clone)]
pub struct StoredInvite {
    /// The alliance it joins.
    pub alliance: AllianceId,
    /// SHA-256 of its one-time token.
    pub token_sha256: [u8; 32],
    /// The role it grants.
    pub role: Role,
    /// The encrypted package.
    pub package: Vec<u8>,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The device that redeemed it, if any.
    pub used_by: Option<DeviceId>,
}

/// What happened to one appended blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Stored now, or already stored with the same bytes.
    Stored,
    /// A different blob already has this id.
    Conflict,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    /// Done: what happened to each blob, in order.
    Done(Vec<Appended>),
    /// The device is no longer active (removed while the request was on its way).
    NotActive,
    /// A checkpoint claims to cover positions the relay has not reached;
    /// nothing was stored.
    CoversAhead,
    /// The alliance would hold more than its quota; nothing was stored.
    OverQuota {
        /// Bytes the alliance holds now.
        used: u64,
    },
    /// The request's nonce was used before (a replay); nothing was stored.
    Replayed,
}

/// A signed request's nonce, as the replay guard keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestNonce {
    /// The device that signed the request.
    pub device: DeviceId,
    /// Its 16 random bytes.
    pub nonce: [u8; 16],
    /// The time the request carries.
    pub time: Timestamp,
}

/// What a purge deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    /// Blobs deleted.
    pub blobs: u64,
    /// Bytes of blob data deleted.
    pub bytes: u64,
}

/// Something changed in an alliance; devices connected for live updates
/// are told, and sync. Carries no content, only which alliance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// New blobs or membership entries in this alliance.
    Alliance(AllianceId),
    /// Notices may have been lost (a database connection dropped): every
    /// listener should sync.
    Everything,
}

/// How many notices a slow listener may fall behind before it is told to
/// sync everything.
const CHANGE_BACKLOG: usize = 1024;

/// A fresh change channel.
fn change_channel() -> broadcast::Sender<Change> {
    broadcast::channel(CHANGE_BACKLOG).0
}

/// What the relay derives from the membership log about one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceAccess {
    /// The device.
    pub device: DeviceId,
    /// Its member's role.
    pub role: Role,
    /// Whether it is still in the alliance.
    pub active: bool,
}

impl DeviceAccess {
    /// Every device the membership names.
    pub fn all(membership: &Membership) -> Vec<Self> {
        membership
            .devices()
            .filter_map(|(id, info)| {
                Some(Self {
                    device: *id,
                    role: membership.member(&info.member)?.role,
                    active: info.active,
                })
            })
            .collect()
    }
}

/// What happened to a log append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogAppend {
    /// Appended.
    Appended,
    /// Another append took those places first.
    Conflict,
    /// A removal's cutoff is behind a batch the relay holds.
    CutoffBehind,
}

/// One page of blobs.
pub struct Page {
    /// The blobs, in order.
    pub blobs: Vec<BlobRecord>,
    /// The cursor after the last one.
    pub next: u64,
    /// Whether more follow.
    pub more: bool,
}

/// Everything the relay keeps. Every write is durable when its future resolves.
pub trait Storage: Send + Sync + 'static {
    /// Registers an alliance with the first entries of its membership log
    /// and the devices they name, in one transaction. Returns false when the
    /// alliance already exists.
    fn create_alliance(
        &self,
        alliance: AllianceId,
        log: &[SignedEntry],
        devices: &[DeviceAccess],
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Keeps a new registration token (its SHA-256).
    fn add_registration_token(
        &self,
        token_sha256: [u8; 32],
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Spends a registration token on `alliance`: true when it was unused,
    /// or already spent on the same alliance (a retried registration).
    fn use_registration_token(
        &self,
        token_sha256: [u8; 32],
        alliance: AllianceId,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// A device's access in an alliance, if the membership names it.
    fn device_access(
        &self,
        alliance: AllianceId,
        device: DeviceId,
    ) -> impl Future<Output = Result<Option<DeviceAccess>, StorageError>> + Send;

    /// The membership log from entry `from` on.
    fn log(
        &self,
        alliance: AllianceId,
        from: u64,
    ) -> impl Future<Output = Result<Vec<SignedEntry>, StorageError>> + Send;

    /// Appends entries that follow entry `from - 1`, and records the devices
    /// as the new log names them, in one transaction. Refused (nothing
    /// changes) when another append took those places first, or when a
    /// removed device holds a batch numbered past the cutoff the removal
    /// gives for its scope.
    fn append_log(
        &self,
        alliance: AllianceId,
        from: u64,
        entries: &[SignedEntry],
        devices: &[DeviceAccess],
        cutoffs: &[Cutoff],
        now: Timestamp,
    ) -> impl Future<Output = Result<LogAppend, StorageError>> + Send;

    /// Stores a new invite. Returns false when the id is taken.
    fn put_invite(
        &self,
        id: InviteId,
        invite: StoredInvite,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Reads an invite.
    fn invite(
        &self,
        id: InviteId,
    ) -> impl Future<Output = Result<Option<StoredInvite>, StorageError>> + Send;

    /// Marks an unused invite used by `device` (the device joins when its
    /// signed `Join` entry is appended). Returns false when someone used it first.
    fn consume_invite(
        &self,
        id: InviteId,
        device: DeviceId,
        now: Timestamp,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Deletes the packages (every epoch key, sealed to the link) of
    /// `invites` in `alliance`: used or cancelled. The invites stay, so a
    /// second redeem is answered. Returns how many were still held. Call
    /// [`Storage::scrub_invites`] after it.
    fn drop_invite_packages(
        &self,
        alliance: AllianceId,
        invites: &[InviteId],
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Deletes the packages of every invite that expired before
    /// `expired_before`, used or not. Returns how many.
    fn drop_stale_invite_packages(
        &self,
        expired_before: Timestamp,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Appends blobs idempotently on (alliance, blob id), in one transaction,
    /// if `device` is still active, no checkpoint covers a position past the
    /// alliance's last, and the alliance stays within `quota_bytes` of blob
    /// data. When any blob conflicts, nothing is stored. The request's
    /// `nonce`, if given, is recorded in the same transaction, and a nonce
    /// used before refuses the append ([`Append::Replayed`]). Listeners hear
    /// of it once committed. Concurrent appends share one commit (see
    /// `group.rs`).
    fn append(
        &self,
        alliance: AllianceId,
        device: DeviceId,
        blobs: &[BlobRecord],
        quota_bytes: u64,
        nonce: Option<RequestNonce>,
    ) -> impl Future<Output = Result<Append, StorageError>> + Send;

    /// Up to `limit` blobs after `after`, in append order: of every scope,
    /// or only of the scopes given, each also after its own position. A page
    /// never ends past a blob not yet visible to readers (see PROTOCOL.md).
    fn fetch(
        &self,
        alliance: AllianceId,
        after: u64,
        limit: usize,
        scopes: Option<&[(ScopeId, u64)]>,
    ) -> impl Future<Output = Result<Page, StorageError>> + Send;

    /// For each scope given, its newest checkpoint covering more than the
    /// position given, if any.
    fn checkpoints(
        &self,
        alliance: AllianceId,
        scopes: &[(ScopeId, u64)],
    ) -> impl Future<Output = Result<Vec<BlobRecord>, StorageError>> + Send;

    /// Deletes what `devices` wrote in `alliance` (a member's withdrawal):
    /// their batches, and their checkpoints of `private` scopes (the
    /// member's own). Their checkpoints of shared scopes stay: they hold
    /// other members' writing, whose batches may already be gone. Call
    /// [`Storage::scrub`] after it so the bytes leave the files.
    fn purge_written_by(
        &self,
        alliance: AllianceId,
        devices: &[DeviceId],
        private: &[ScopeId],
    ) -> impl Future<Output = Result<Purged, StorageError>> + Send;

    /// Deletes, in every alliance, the batches and older checkpoints that a
    /// checkpoint stored before `stored_before` covers (devices fetch the
    /// checkpoint instead). Call [`Storage::scrub`] after it.
    fn purge_superseded(
        &self,
        stored_before: Timestamp,
    ) -> impl Future<Output = Result<Purged, StorageError>> + Send;

    /// Makes deleted bytes unrecoverable from the database's files (how
    /// depends on the backend; see docs/OPERATIONS.md).
    fn scrub(&self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// As [`Storage::scrub`], for deleted invite packages.
    fn scrub_invites(&self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Records a request nonce; false when its device used it before. Shared
    /// by every relay instance on the same database. Concurrent calls share
    /// one commit.
    fn first_use(
        &self,
        nonce: RequestNonce,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Whether a request nonce is recorded already (a read: nothing is
    /// written).
    fn nonce_seen(
        &self,
        nonce: RequestNonce,
    ) -> impl Future<Output = Result<bool, StorageError>> + Send;

    /// Forgets nonces of requests made before `before` (they are refused as
    /// stale anyway). Returns how many.
    fn forget_nonces(
        &self,
        before: Timestamp,
    ) -> impl Future<Output = Result<u64, StorageError>> + Send;

    /// Whether the database answers.
    fn ready(&self) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Notices of changes, from this instance and (PostgreSQL) every other.
    fn changes(&self) -> broadcast::Receiver<Change>;
}

/// Milliseconds as SQL stores them.
fn ms(t: Timestamp) -> i64 {
    i64::try_from(t.millis()).unwrap_or(i64::MAX)
}

/// A position or count as SQL stores it.
fn position(p: u64) -> i64 {
    i64::try_from(p).unwrap_or(i64::MAX)
}

/// A stored id of fixed length.
fn array<const N: usize>(bytes: Vec<u8>) -> Result<[u8; N], StorageError> {
    bytes
        .try_into()
        .map_err(|_| StorageError(sqlx::Error::Decode("stored id has the wrong length".into())))
}

/// Whether a checkpoint among `blobs` claims to cover a position past
/// `last`, the alliance's newest (a device checkpoints what it has fetched).
fn covers_ahead(blobs: &[BlobRecord], last: u64) -> bool {
    blobs.iter().any(|b| b.covers.is_some_and(|c| c > last))
}
