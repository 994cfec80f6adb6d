//! SQLite: one file, zero configuration. WAL with `synchronous=FULL`, so a
//! write is on disk before the relay acknowledges it.

use std::path::Path;
use std::str::FromStr;

use kith_core::{
    AllianceId, BlobId, BlobRecord, DeviceId, DocId, InviteId, Role, ScopeId, SignedEntry,
    Timestamp,
};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use tokio::sync::broadcast;

use super::group::{AppendJob, Decided, GroupCommit, LockOrder, NonceFrom, Writer};
use super::shared::{shared_helpers, shared_methods};
use super::{
    Append, Appended, Change, DeviceAccess, LogAppend, Page, Purged, RequestNonce, Storage,
    StorageError, StoredInvite, array, change_channel, covers_ahead, ms, position,
};
use kith_core::membership::Cutoff;

/// The SQLite backend: one relay process per file.
#[derive(Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    changes: broadcast::Sender<Change>,
    group: GroupCommit,
}

/// Performs batches of nonces and appends (see group.rs). One writer:
/// SQLite takes one write transaction at a time.
struct SqliteWriter {
    pool: SqlitePool,
    changes: broadcast::Sender<Change>,
}

impl Writer for SqliteWriter {
    async fn write(
        &self,
        nonces: &[RequestNonce],
        appends: &[&AppendJob],
    ) -> Result<Decided, StorageError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let (decided, changed) = write_batch(&mut tx, nonces, appends).await?;
        tx.commit().await?;
        for alliance in changed {
            // No listener is fine.
            let _ = self.changes.send(Change::Alliance(alliance));
        }
        Ok(decided)
    }
}

impl SqliteStorage {
    /// Opens (creating if needed) `relay.sqlite3` in `dir` and migrates it.
    pub async fn open(dir: &Path) -> Result<Self, StorageError> {
        let options = SqliteConnectOptions::new()
            .filename(dir.join("relay.sqlite3"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Freed pages are overwritten with zeros, so purged bytes do not linger.
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| StorageError(e.into()))?;
        let changes = change_channel();
        let writer = SqliteWriter {
            pool: pool.clone(),
            changes: changes.clone(),
        };
        Ok(Self {
            pool,
            changes,
            group: GroupCommit::start(writer, 1),
        })
    }

    /// A write transaction that holds SQLite's write lock from its start, so
    /// what it checks cannot change before it commits.
    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>, StorageError> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn notify(&self, alliance: AllianceId) {
        // No listener is fine.
        let _ = self.changes.send(Change::Alliance(alliance));
    }
}

shared_helpers!(sqlx::Sqlite, sqlx::sqlite::SqliteRow);

/// SQLite locks the whole database for a write transaction (`BEGIN
/// IMMEDIATE`): there is no row to lock.
async fn lock_alliances(
    _tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    _alliances: &[AllianceId],
) -> Result<(), StorageError> {
    Ok(())
}

/// One append inside a batch's transaction. Returns its outcome and
/// whether it stored anything new; the caller keeps or rolls back its
/// savepoint by the outcome.
async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    job: &AppendJob,
) -> Result<(Append, bool), StorageError> {
    let AppendJob {
        alliance,
        device,
        blobs,
        quota_bytes,
        ..
    } = job;
    let active: Option<bool> =
        sqlx::query_scalar("SELECT active FROM devices WHERE alliance_id = ? AND device_id = ?")
            .bind(&alliance.0[..])
            .bind(&device.0[..])
            .fetch_optional(&mut **tx)
            .await?;
    if active != Some(true) {
        return Ok((Append::NotActive, false));
    }
    let used: i64 = sqlx::query_scalar("SELECT stored_bytes FROM alliances WHERE id = ?")
        .bind(&alliance.0[..])
        .fetch_one(&mut **tx)
        .await?;
    let used = u64::try_from(used).unwrap_or(0);
    let last: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM blobs WHERE alliance_id = ?")
            .bind(&alliance.0[..])
            .fetch_one(&mut **tx)
            .await?;
    if covers_ahead(blobs, u64::try_from(last).unwrap_or(0)) {
        return Ok((Append::CoversAhead, false));
    }
    let stored_at = ms(crate::now());
    let mut added = 0u64;
    let mut out = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let inserted = sqlx::query(
            "INSERT INTO blobs (alliance_id, blob_id, doc_id, device_id, data, scope_id, covers, batch_seq, stored_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (alliance_id, blob_id) DO NOTHING",
        )
        .bind(&alliance.0[..])
        .bind(&blob.id.0[..])
        .bind(&blob.doc.0[..])
        .bind(&device.0[..])
        .bind(&blob.data)
        .bind(&blob.scope.0[..])
        .bind(blob.covers.map(position))
        .bind(blob.seq.map(position))
        .bind(stored_at)
        .execute(&mut **tx)
        .await?
        .rows_affected()
            == 1;
        let outcome = if inserted {
            added += blob.data.len() as u64;
            Appended::Stored
        } else {
            already_stored(tx, *alliance, *device, blob).await?
        };
        out.push(outcome);
    }
    if out.contains(&Appended::Conflict) {
        return Ok((Append::Done(out), false));
    }
    if added > 0 && used + added > *quota_bytes {
        return Ok((Append::OverQuota { used }, false));
    }
    if added > 0 {
        sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes + ? WHERE id = ?")
            .bind(position(added))
            .bind(&alliance.0[..])
            .execute(&mut **tx)
            .await?;
    }
    Ok((Append::Done(out), added > 0))
}

impl Storage for SqliteStorage {
    shared_methods!(sqlx::Sqlite);

    async fn append_log(
        &self,
        alliance: AllianceId,
        from: u64,
        entries: &[SignedEntry],
        devices: &[DeviceAccess],
        cutoffs: &[Cutoff],
        now: Timestamp,
    ) -> Result<LogAppend, StorageError> {
        // No batch can slip in between the cutoff check and the append.
        let mut tx = self.begin_write().await?;
        if !insert_entries(&mut tx, &alliance.0, from, entries).await? {
            return Ok(LogAppend::Conflict);
        }
        if cutoff_behind(&mut tx, alliance, cutoffs).await? {
            return Ok(LogAppend::CutoffBehind);
        }
        record_devices(&mut tx, &alliance.0, devices, now).await?;
        tx.commit().await?;
        self.notify(alliance);
        Ok(LogAppend::Appended)
    }

    async fn scrub(&self) -> Result<(), StorageError> {
        // secure_delete has already overwritten deleted rows in the database
        // file; the write-ahead log still holds the old pages until it is
        // checkpointed and truncated. Readers can hold it back: retry.
        for _ in 0..50 {
            let busy: i64 = sqlx::query_scalar("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.pool)
                .await?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        Err(StorageError(sqlx::Error::Protocol(
            "the write-ahead log stayed busy; purged bytes may remain in it until the next checkpoint".into(),
        )))
    }

    async fn scrub_invites(&self) -> Result<(), StorageError> {
        // The same for every table: secure_delete, then the log.
        self.scrub().await
    }
}
