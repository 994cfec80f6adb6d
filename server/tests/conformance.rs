//! One conformance suite for every storage backend: each case runs on
//! SQLite (a temporary file) and on PostgreSQL (a fresh database on the
//! machine's server, dropped afterwards; a real database, never a mock).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use kith_core::membership::Cutoff;
use kith_core::{
    AllianceId, BlobId, BlobRecord, DeviceId, DocId, InviteId, Role, ScopeId, SignedEntry,
    Timestamp,
};
use kith_server::storage::{
    Append, Appended, Change, DeviceAccess, LogAppend, PostgresStorage, Purged, RequestNonce,
    SqliteStorage, Storage, StoredInvite,
};

const QUOTA: u64 = 1 << 30;

/// The storage under test, and what must live as long as it.
struct Backend<S> {
    storage: Arc<S>,
    _keep: Box<dyn std::any::Any + Send>,
}

async fn sqlite() -> Backend<SqliteStorage> {
    let dir = tempfile::tempdir().unwrap();
    let storage = SqliteStorage::open(dir.path()).await.unwrap();
    Backend {
        storage: Arc::new(storage),
        _keep: Box::new(dir),
    }
}

async fn postgres() -> Backend<PostgresStorage> {
    let db = tokio::task::spawn_blocking(kith_tests::TestDatabase::create)
        .await
        .unwrap();
    let storage = PostgresStorage::connect(&db.url).await.unwrap();
    Backend {
        storage: Arc::new(storage),
        _keep: Box::new(db),
    }
}

/// Each case, once per backend.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::sqlite().await;
                    super::$case(&backend.storage).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backend = super::postgres().await;
                    super::$case(&backend.storage).await;
                    // Close connections before the database is dropped.
                    drop(backend.storage);
                }
            )*
        }
    };
}

conformance!(
    alliances_and_membership,
    removal_cutoffs,
    invites,
    appends_are_idempotent,
    quota,
    fetch_pages_in_order,
    checkpoints_and_superseded_blobs,
    withdrawal,
    refused_appends_store_nothing,
    nonces,
    change_notices,
    concurrent_appends_are_never_skipped,
    appends_keep_their_nonces,
    concurrent_appends_each_get_their_own_answer,
);

fn alliance(n: u8) -> AllianceId {
    AllianceId([n; 16])
}

fn nonce(device_number: u8, fill: u8, time: Timestamp) -> RequestNonce {
    RequestNonce {
        device: device(device_number),
        nonce: [fill; 16],
        time,
    }
}

fn device(n: u8) -> DeviceId {
    DeviceId([n; 32])
}

fn scope(n: u8) -> ScopeId {
    ScopeId([n; 16])
}

fn entry(n: u8) -> SignedEntry {
    SignedEntry {
        body: vec![n; 40],
        signature: vec![n; 64],
    }
}

fn access(d: u8, role: Role, active: bool) -> DeviceAccess {
    DeviceAccess {
        device: device(d),
        role,
        active,
    }
}

fn blob_id(id: u16) -> BlobId {
    let mut bytes = [0u8; 16];
    bytes[..2].copy_from_slice(&id.to_be_bytes());
    BlobId(bytes)
}

fn blob(id: u16, scope_n: u8, data: &[u8]) -> BlobRecord {
    BlobRecord {
        id: blob_id(id),
        doc: DocId([scope_n; 16]),
        scope: scope(scope_n),
        covers: None,
        seq: Some(u64::from(id)),
        data: data.to_vec(),
    }
}

fn now() -> Timestamp {
    kith_server::now()
}

/// An alliance with a steward device (1) and a member device (2).
async fn setup<S: Storage>(s: &S, a: AllianceId) {
    let devices = [
        access(1, Role::Steward, true),
        access(2, Role::Member, true),
    ];
    assert!(
        s.create_alliance(a, &[entry(1), entry(2)], &devices, now())
            .await
            .unwrap()
    );
}

async fn append_ok<S: Storage>(s: &S, a: AllianceId, d: u8, blobs: &[BlobRecord]) {
    match s.append(a, device(d), blobs, QUOTA, None).await.unwrap() {
        Append::Done(outcomes) => assert!(outcomes.iter().all(|o| *o == Appended::Stored)),
        other => panic!("append refused: {other:?}"),
    }
}

async fn all_ids<S: Storage>(s: &S, a: AllianceId) -> Vec<BlobId> {
    s.fetch(a, 0, 10_000, None)
        .await
        .unwrap()
        .blobs
        .iter()
        .map(|b| b.id)
        .collect()
}

async fn alliances_and_membership<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    // Registering again changes nothing.
    assert!(
        !s.create_alliance(a, &[entry(9)], &[access(9, Role::Steward, true)], now())
            .await
            .unwrap()
    );
    assert_eq!(s.log(a, 0).await.unwrap(), vec![entry(1), entry(2)]);
    assert_eq!(s.log(a, 1).await.unwrap(), vec![entry(2)]);
    assert_eq!(s.device_access(a, device(9)).await.unwrap(), None);
    assert_eq!(
        s.device_access(a, device(2)).await.unwrap(),
        Some(access(2, Role::Member, true))
    );
    // Another alliance sees none of it.
    assert_eq!(s.device_access(alliance(2), device(2)).await.unwrap(), None);
    assert!(s.log(alliance(2), 0).await.unwrap().is_empty());

    // A log append at a taken place is refused and changes nothing.
    let removed = [
        access(1, Role::Steward, true),
        access(2, Role::Member, false),
    ];
    assert_eq!(
        s.append_log(a, 1, &[entry(3)], &removed, &[], now())
            .await
            .unwrap(),
        LogAppend::Conflict
    );
    assert_eq!(s.log(a, 0).await.unwrap(), vec![entry(1), entry(2)]);
    assert!(s.device_access(a, device(2)).await.unwrap().unwrap().active);
    // At the next place it is appended, and the devices follow it.
    assert_eq!(
        s.append_log(a, 2, &[entry(3)], &removed, &[], now())
            .await
            .unwrap(),
        LogAppend::Appended
    );
    assert_eq!(s.log(a, 0).await.unwrap().len(), 3);
    assert!(!s.device_access(a, device(2)).await.unwrap().unwrap().active);
}

async fn removal_cutoffs<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    append_ok(&**s, a, 2, &[blob(1, 1, b"one"), blob(2, 1, b"two")]).await;
    let removed = [
        access(1, Role::Steward, true),
        access(2, Role::Member, false),
    ];
    let behind = Cutoff {
        device: device(2),
        scope: scope(1),
        seq: 1,
    };
    assert_eq!(
        s.append_log(a, 2, &[entry(3)], &removed, &[behind], now())
            .await
            .unwrap(),
        LogAppend::CutoffBehind
    );
    assert_eq!(s.log(a, 0).await.unwrap().len(), 2, "nothing appended");
    assert!(s.device_access(a, device(2)).await.unwrap().unwrap().active);
    let seen = Cutoff {
        device: device(2),
        scope: scope(1),
        seq: 2,
    };
    assert_eq!(
        s.append_log(a, 2, &[entry(3)], &removed, &[seen], now())
            .await
            .unwrap(),
        LogAppend::Appended
    );
    // The removed device can append no more.
    assert_eq!(
        s.append(a, device(2), &[blob(3, 1, b"late")], QUOTA, None)
            .await
            .unwrap(),
        Append::NotActive
    );
    assert_eq!(all_ids(&**s, a).await.len(), 2);
}

async fn invites<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    let id = InviteId([7; 16]);
    let invite = StoredInvite {
        alliance: a,
        token_sha256: [3; 32],
        role: Role::Member,
        package: vec![5; 100],
        expires_at: Timestamp(now().millis() + 60_000),
        used_by: None,
    };
    assert!(s.put_invite(id, invite.clone()).await.unwrap());
    assert!(!s.put_invite(id, invite).await.unwrap(), "ids are unique");
    let stored = s.invite(id).await.unwrap().unwrap();
    assert_eq!(
        (stored.alliance, stored.token_sha256, stored.role),
        (a, [3; 32], Role::Member)
    );
    assert_eq!(stored.package, vec![5; 100]);
    assert_eq!(stored.used_by, None);
    assert!(s.consume_invite(id, device(4), now()).await.unwrap());
    assert!(!s.consume_invite(id, device(5), now()).await.unwrap());
    assert_eq!(
        s.invite(id).await.unwrap().unwrap().used_by,
        Some(device(4))
    );
    assert!(s.invite(InviteId([8; 16])).await.unwrap().is_none());
}

async fn appends_are_idempotent<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    let first = blob(1, 1, b"first");
    append_ok(&**s, a, 2, std::slice::from_ref(&first)).await;
    // A retry of the same blob is fine and stores nothing twice.
    append_ok(&**s, a, 2, &[first.clone(), blob(2, 1, b"second")]).await;
    assert_eq!(all_ids(&**s, a).await, vec![blob_id(1), blob_id(2)]);
    // The same device sending its blob again sealed to a newer key (other
    // bytes, same document and place) is a retry too: the first copy stays.
    let resealed = BlobRecord {
        data: b"resealed".to_vec(),
        ..first.clone()
    };
    match s
        .append(a, device(2), &[resealed], QUOTA, None)
        .await
        .unwrap()
    {
        Append::Done(outcomes) => assert_eq!(outcomes, vec![Appended::Stored]),
        other => panic!("{other:?}"),
    }
    // Another device, or another document, under the same id is a
    // conflict, and changes nothing.
    let forged = BlobRecord {
        data: b"forged".to_vec(),
        ..first.clone()
    };
    match s
        .append(a, device(1), &[forged], QUOTA, None)
        .await
        .unwrap()
    {
        Append::Done(outcomes) => assert_eq!(outcomes, vec![Appended::Conflict]),
        other => panic!("{other:?}"),
    }
    let elsewhere = BlobRecord {
        doc: DocId([9; 16]),
        ..first.clone()
    };
    match s
        .append(a, device(2), &[elsewhere], QUOTA, None)
        .await
        .unwrap()
    {
        Append::Done(outcomes) => assert_eq!(outcomes, vec![Appended::Conflict]),
        other => panic!("{other:?}"),
    }
    let page = s.fetch(a, 0, 10, None).await.unwrap();
    assert_eq!(page.blobs[0], first);
    // A device the membership does not name cannot append.
    assert_eq!(
        s.append(a, device(9), &[blob(3, 1, b"x")], QUOTA, None)
            .await
            .unwrap(),
        Append::NotActive
    );
    // Nor can anyone to an alliance that does not exist.
    assert_eq!(
        s.append(alliance(5), device(2), &[blob(3, 1, b"x")], QUOTA, None)
            .await
            .unwrap(),
        Append::NotActive
    );
    assert_eq!(all_ids(&**s, a).await.len(), 2);
}

async fn quota<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    let ok = s
        .append(a, device(2), &[blob(1, 1, &[1; 600])], 1000, None)
        .await
        .unwrap();
    assert!(matches!(ok, Append::Done(_)));
    // Over the quota: nothing of the request is stored.
    let over = s
        .append(
            a,
            device(2),
            &[blob(2, 1, &[2; 300]), blob(3, 1, &[3; 300])],
            1000,
            None,
        )
        .await
        .unwrap();
    assert_eq!(over, Append::OverQuota { used: 600 });
    assert_eq!(all_ids(&**s, a).await.len(), 1);
    // A retry of a stored blob adds nothing, so it is not over.
    assert!(matches!(
        s.append(a, device(2), &[blob(1, 1, &[1; 600])], 1000, None)
            .await
            .unwrap(),
        Append::Done(_)
    ));
    // Purging frees the space.
    let purged = s.purge_written_by(a, &[device(2)], &[]).await.unwrap();
    assert_eq!(
        purged,
        Purged {
            blobs: 1,
            bytes: 600
        }
    );
    assert!(matches!(
        s.append(a, device(2), &[blob(2, 1, &[2; 900])], 1000, None)
            .await
            .unwrap(),
        Append::Done(_)
    ));
}

async fn fetch_pages_in_order<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    let other = alliance(2);
    setup(&**s, a).await;
    setup(&**s, other).await;
    for i in 0..10u16 {
        let scope_n = u8::try_from(i % 2).unwrap() + 1;
        append_ok(&**s, a, 2, &[blob(i, scope_n, &[7; 8])]).await;
        append_ok(&**s, other, 2, &[blob(100 + i, 1, b"other")]).await;
    }
    // Pages of 4: in order, each after the last, no blob twice or missing.
    let mut seen = Vec::new();
    let mut after = 0;
    loop {
        let page = s.fetch(a, after, 4, None).await.unwrap();
        assert!(page.blobs.len() <= 4);
        assert!(page.next >= after);
        seen.extend(page.blobs.iter().map(|b| b.id));
        after = page.next;
        if !page.more {
            break;
        }
    }
    assert_eq!(seen, (0..10).map(blob_id).collect::<Vec<_>>());
    // Up to date: an empty page at the same cursor.
    let end = s.fetch(a, after, 4, None).await.unwrap();
    assert!(end.blobs.is_empty() && !end.more && end.next == after);

    // Only the scopes asked for, each from its own position: all of scope
    // 1, and scope 2 after the fourth blob.
    let fourth = s.fetch(a, 0, 4, None).await.unwrap().next;
    let only = s
        .fetch(a, 0, 100, Some(&[(scope(1), 0), (scope(2), fourth)]))
        .await
        .unwrap();
    let got: BTreeSet<BlobId> = only.blobs.iter().map(|b| b.id).collect();
    let want: BTreeSet<BlobId> = [0, 2, 4, 6, 8, 5, 7, 9].into_iter().map(blob_id).collect();
    assert_eq!(got, want);
    assert!(
        s.fetch(a, 0, 100, Some(&[(scope(9), 0)]))
            .await
            .unwrap()
            .blobs
            .is_empty()
    );
}

async fn checkpoints_and_superseded_blobs<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    for i in 0..6u16 {
        append_ok(&**s, a, 2, &[blob(i, 1, b"batch")]).await;
    }
    append_ok(&**s, a, 2, &[blob(20, 2, b"other scope")]).await;
    let third = s.fetch(a, 0, 3, None).await.unwrap().next;
    let sixth = s.fetch(a, 0, 6, None).await.unwrap().next;
    let checkpoint = |id: u16, covers: u64| BlobRecord {
        covers: Some(covers),
        seq: None,
        ..blob(id, 1, b"checkpoint")
    };
    append_ok(&**s, a, 1, &[checkpoint(50, third)]).await;
    append_ok(&**s, a, 1, &[checkpoint(51, sixth)]).await;
    let newest = s.checkpoints(a, &[(scope(1), 0)]).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].id, blob_id(51));
    assert_eq!(newest[0].covers, Some(sixth));
    // A device that has it already gets nothing; nor for a scope without one.
    assert!(
        s.checkpoints(a, &[(scope(1), sixth)])
            .await
            .unwrap()
            .is_empty()
    );
    assert!(s.checkpoints(a, &[(scope(2), 0)]).await.unwrap().is_empty());

    // Superseded: the batches the newest checkpoint covers and the older
    // checkpoint go, once the checkpoint is old enough; nothing else.
    let too_early = Timestamp(now().millis() - 60_000);
    assert_eq!(
        s.purge_superseded(too_early).await.unwrap(),
        Purged::default()
    );
    let purged = s
        .purge_superseded(Timestamp(now().millis() + 1))
        .await
        .unwrap();
    assert_eq!(purged.blobs, 7, "six batches and the older checkpoint");
    assert_eq!(all_ids(&**s, a).await, vec![blob_id(20), blob_id(51)]);
    s.scrub().await.unwrap();
    // The space they took is free again: only the newest checkpoint (10
    // bytes) and the other scope's batch (11) count.
    assert_eq!(
        s.append(a, device(2), &[blob(8, 2, &[8; 69])], 100, None)
            .await
            .unwrap(),
        Append::Done(vec![Appended::Stored])
    );
    // Later batches stay.
    append_ok(&**s, a, 2, &[blob(7, 1, b"after")]).await;
    assert_eq!(
        s.purge_superseded(Timestamp(now().millis() + 1))
            .await
            .unwrap(),
        Purged::default()
    );
}

async fn withdrawal<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    append_ok(&**s, a, 1, &[blob(1, 1, b"steward")]).await;
    append_ok(&**s, a, 2, &[blob(2, 1, b"member"), blob(3, 2, b"member2")]).await;
    let last = s.fetch(a, 0, 10, None).await.unwrap().next;
    // The member's checkpoints: of a shared scope (1), and of their own (2).
    let checkpoint = |id: u16, scope_n: u8| BlobRecord {
        covers: Some(last),
        seq: None,
        ..blob(id, scope_n, b"checkpoint")
    };
    append_ok(&**s, a, 2, &[checkpoint(10, 1), checkpoint(11, 2)]).await;
    let purged = s
        .purge_written_by(a, &[device(2)], &[scope(2)])
        .await
        .unwrap();
    assert_eq!(purged.blobs, 3, "two batches and the private checkpoint");
    assert_eq!(purged.bytes, 6 + 7 + 10);
    // The shared checkpoint holds others' writing too: it stays.
    assert_eq!(all_ids(&**s, a).await, vec![blob_id(1), blob_id(10)]);
    s.scrub().await.unwrap();
    assert_eq!(all_ids(&**s, a).await, vec![blob_id(1), blob_id(10)]);
}

/// A checkpoint cannot claim positions the relay has not reached (it would
/// hide real checkpoints and have their batches deleted); and an append
/// with a conflicting blob stores none of its blobs.
async fn refused_appends_store_nothing<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    let mut notices = Notices::subscribe(&**s).await;
    setup(&**s, a).await;
    append_ok(&**s, a, 2, &[blob(1, 1, b"one")]).await;
    assert_eq!(notices.since_last(&**s).await, vec![Change::Alliance(a)]);
    let last = s.fetch(a, 0, 10, None).await.unwrap().next;
    let ahead = BlobRecord {
        covers: Some(last + 1_000),
        seq: None,
        ..blob(50, 1, b"checkpoint")
    };
    assert_eq!(
        s.append(a, device(1), &[blob(2, 1, b"two"), ahead], QUOTA, None)
            .await
            .unwrap(),
        Append::CoversAhead
    );
    // Device 2's blob 1, under another document: a conflict.
    let forged = BlobRecord {
        doc: DocId([9; 16]),
        ..blob(1, 1, b"other bytes")
    };
    match s
        .append(a, device(2), &[blob(3, 1, b"three"), forged], QUOTA, None)
        .await
        .unwrap()
    {
        Append::Done(outcomes) => assert_eq!(outcomes, vec![Appended::Stored, Appended::Conflict]),
        other => panic!("{other:?}"),
    }
    assert_eq!(all_ids(&**s, a).await, vec![blob_id(1)], "nothing stored");
    assert_eq!(
        notices.since_last(&**s).await,
        vec![],
        "and nothing announced"
    );
    // The quota counts only what is stored.
    assert!(matches!(
        s.append(a, device(2), &[blob(4, 1, &[4; 997])], 1000, None)
            .await
            .unwrap(),
        Append::Done(_)
    ));
}

async fn nonces<S: Storage>(s: &Arc<S>) {
    let t = now();
    assert!(s.first_use(nonce(1, 1, t)).await.unwrap());
    assert!(!s.first_use(nonce(1, 1, t)).await.unwrap(), "replay");
    assert!(s.first_use(nonce(2, 1, t)).await.unwrap());
    assert!(s.first_use(nonce(1, 2, t)).await.unwrap());
    let old = Timestamp(t.millis() - 3_600_000);
    assert!(s.first_use(nonce(3, 1, old)).await.unwrap());
    assert_eq!(s.forget_nonces(Timestamp(t.millis() - 1)).await.unwrap(), 1);
    assert!(!s.first_use(nonce(1, 1, t)).await.unwrap(), "kept");
    s.ready().await.unwrap();
}

async fn next_change(changes: &mut tokio::sync::broadcast::Receiver<Change>) -> Change {
    tokio::time::timeout(Duration::from_secs(10), changes.recv())
        .await
        .expect("a notice within 10 s")
        .unwrap()
}

/// Notices arrive some time after their commit (on PostgreSQL through
/// LISTEN/NOTIFY, on another connection), so "nothing was announced" cannot
/// be checked with `try_recv`: a late notice of an earlier write would fail
/// it, and a wrong notice still on its way would pass it. Instead each check
/// commits a write to a separate marker alliance and collects every notice
/// that arrives before the marker's own. Notices are delivered in commit
/// order, so that list is exactly what the writes since the last marker
/// announced.
struct Notices {
    changes: tokio::sync::broadcast::Receiver<Change>,
    marker: AllianceId,
    markers_sent: u16,
}

impl Notices {
    /// Subscribes, then creates the marker alliance (`alliance(200)`) and
    /// drains what came before it.
    async fn subscribe<S: Storage>(s: &S) -> Self {
        let mut notices = Self {
            changes: s.changes(),
            marker: alliance(200),
            markers_sent: 0,
        };
        setup(s, notices.marker).await;
        notices.since_last(s).await;
        notices
    }

    /// What was announced since the last call, in order.
    async fn since_last<S: Storage>(&mut self, s: &S) -> Vec<Change> {
        self.markers_sent += 1;
        let marker = blob(self.markers_sent, 1, b"marker");
        append_ok(s, self.marker, 2, &[marker]).await;
        let mut before = Vec::new();
        loop {
            match next_change(&mut self.changes).await {
                Change::Alliance(a) if a == self.marker => return before,
                other => before.push(other),
            }
        }
    }
}

async fn change_notices<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    let mut notices = Notices::subscribe(&**s).await;
    setup(&**s, a).await;
    notices.since_last(&**s).await;
    append_ok(&**s, a, 2, &[blob(1, 1, b"new")]).await;
    assert_eq!(notices.since_last(&**s).await, vec![Change::Alliance(a)]);
    let steward = [access(1, Role::Steward, true)];
    s.append_log(a, 2, &[entry(3)], &steward, &[], now())
        .await
        .unwrap();
    assert_eq!(notices.since_last(&**s).await, vec![Change::Alliance(a)]);
    // A retried append that stores nothing new is not news.
    append_ok(&**s, a, 2, &[blob(1, 1, b"new")]).await;
    assert_eq!(
        notices.since_last(&**s).await,
        vec![],
        "a retry is not news"
    );
    append_ok(&**s, a, 2, &[blob(2, 1, b"newer")]).await;
    assert_eq!(
        notices.since_last(&**s).await,
        vec![Change::Alliance(a)],
        "one notice per append"
    );
}

/// Writers at once and a reader paging behind them: the reader sees every
/// blob exactly once (a page never ends past a blob not yet visible).
async fn concurrent_appends_are_never_skipped<S: Storage>(s: &Arc<S>) {
    const WRITERS: u16 = 8;
    const EACH: u16 = 40;
    let a = alliance(1);
    let devices: Vec<DeviceAccess> = (1..=WRITERS as u8)
        .map(|d| access(d, Role::Member, true))
        .collect();
    assert!(
        s.create_alliance(a, &[entry(1)], &devices, now())
            .await
            .unwrap()
    );
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let s = s.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..EACH {
                let b = blob(w * EACH + i, 1, &[7; 64]);
                append_ok(&*s, a, u8::try_from(w).unwrap() + 1, &[b]).await;
            }
        }));
    }
    let reader = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = 0;
            while seen.len() < usize::from(WRITERS * EACH) {
                let page = s.fetch(a, after, 5, None).await.unwrap();
                seen.extend(page.blobs.iter().map(|b| b.id));
                after = page.next;
                if !page.more {
                    tokio::task::yield_now().await;
                }
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = tokio::time::timeout(Duration::from_secs(120), reader)
        .await
        .expect("the reader saw every blob (a skipped one is never seen)")
        .unwrap();
    let distinct: BTreeSet<BlobId> = seen.iter().copied().collect();
    assert_eq!(distinct.len(), seen.len(), "no blob twice");
    assert_eq!(distinct.len(), usize::from(WRITERS * EACH));
}

/// An append records its request's nonce in its own commit: a replay of it,
/// or of a nonce recorded on its own, stores nothing.
async fn appends_keep_their_nonces<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    let t = now();
    let first = s
        .append(
            a,
            device(2),
            &[blob(1, 1, b"one")],
            QUOTA,
            Some(nonce(2, 1, t)),
        )
        .await
        .unwrap();
    assert!(matches!(first, Append::Done(_)));
    assert!(s.nonce_seen(nonce(2, 1, t)).await.unwrap(), "recorded");
    assert!(!s.first_use(nonce(2, 1, t)).await.unwrap(), "a replay");
    let replayed = s
        .append(
            a,
            device(2),
            &[blob(2, 1, b"two")],
            QUOTA,
            Some(nonce(2, 1, t)),
        )
        .await
        .unwrap();
    assert_eq!(replayed, Append::Replayed);
    assert!(s.first_use(nonce(2, 3, t)).await.unwrap());
    let after_first_use = s
        .append(
            a,
            device(2),
            &[blob(3, 1, b"three")],
            QUOTA,
            Some(nonce(2, 3, t)),
        )
        .await
        .unwrap();
    assert_eq!(after_first_use, Append::Replayed);
    assert_eq!(all_ids(&**s, a).await, vec![blob(1, 1, b"").id]);
    // Another device may use the same random bytes.
    assert!(!s.nonce_seen(nonce(1, 1, t)).await.unwrap());
}

/// Many appends at once (so they share commits): each is decided on its
/// own. A refused one (over the quota, a replayed nonce) stores nothing and
/// takes nothing from the others.
async fn concurrent_appends_each_get_their_own_answer<S: Storage>(s: &Arc<S>) {
    let a = alliance(1);
    setup(&**s, a).await;
    let t = now();
    // 24 appends of 300 bytes against a quota of 3,000: ten fit. Pairs
    // share a nonce: one of each pair is a replay.
    let mut tasks = Vec::new();
    for i in 0..24u16 {
        let s = s.clone();
        let fill = u8::try_from(i / 2).unwrap();
        tasks.push(tokio::spawn(async move {
            s.append(
                a,
                device(2),
                &[blob(100 + i, 1, &[1; 300])],
                3_000,
                Some(nonce(2, fill, t)),
            )
            .await
            .unwrap()
        }));
    }
    let mut done = 0;
    let mut over = 0;
    let mut replayed = 0;
    for task in tasks {
        match task.await.unwrap() {
            Append::Done(out) => {
                assert_eq!(out, vec![Appended::Stored]);
                done += 1;
            }
            Append::OverQuota { used } => {
                assert!(used + 300 > 3_000, "refused while it fitted: {used}");
                over += 1;
            }
            Append::Replayed => replayed += 1,
            other => panic!("unexpected: {other:?}"),
        }
    }
    assert_eq!(replayed, 12, "one of each pair of nonces");
    assert_eq!(done, 10, "exactly what the quota holds");
    assert_eq!(over, 2);
    assert_eq!(
        all_ids(&**s, a).await.len(),
        10,
        "only what was answered stored"
    );
}
