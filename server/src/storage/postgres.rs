//! PostgreSQL: for several relay instances on one database. Appends lock
//! their alliance's row, so positions commit in order within an alliance;
//! changes reach every instance through LISTEN/NOTIFY.

use std::str::FromStr;
use std::time::Duration;

use kith_core::membership::Cutoff;
use kith_core::{
    AllianceId, BlobId, BlobRecord, DeviceId, DocId, InviteId, Role, ScopeId, SignedEntry,
    Timestamp,
};
use sqlx::Row;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::broadcast;

use super::group::{AppendJob, Decided, GroupCommit, LockOrder, NonceFrom, Writer};
use super::shared::{shared_helpers, shared_methods};
use super::{
    Append, Appended, Change, DeviceAccess, LogAppend, Page, Purged, RequestNonce, Storage,
    StorageError, StoredInvite, array, change_channel, covers_ahead, ms, position,
};

/// The channel every instance listens on; a notice's payload is an alliance id in hex.
const CHANNEL: &str = "kith_changes";

/// Batches flushed at once (see group.rs): PostgreSQL flushes concurrent
/// commits together, so a few writers keep the disk busy while the others
/// fill their next batch.
const WRITERS: usize = 4;

/// The PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
    group: GroupCommit,
}

/// Performs batches of nonces and appends (see group.rs).
struct PostgresWriter {
    pool: PgPool,
}

impl Writer for PostgresWriter {
    async fn write(
        &self,
        nonces: &[RequestNonce],
        appends: &[&AppendJob],
    ) -> Result<Decided, StorageError> {
        let mut tx = self.pool.begin().await?;
        let (decided, changed) = write_batch(&mut tx, nonces, appends).await?;
        for alliance in changed {
            notify(&mut tx, alliance).await?;
        }
        tx.commit().await?;
        Ok(decided)
    }
}

impl PostgresStorage {
    /// Connects to `url`, migrates the schema (one instance at a time: sqlx
    /// holds an advisory lock) and starts listening for other instances' changes.
    pub async fn connect(url: &str) -> Result<Self, StorageError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect(url)
            .await?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| StorageError(e.into()))?;
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let changes = change_channel();
        tokio::spawn(forward_notices(listener, changes.clone()));
        let writer = PostgresWriter { pool: pool.clone() };
        Ok(Self {
            pool,
            changes,
            group: GroupCommit::start(writer, WRITERS),
        })
    }

    /// A transaction (PostgreSQL takes row locks as statements need them).
    async fn begin_write(
        &self,
    ) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, StorageError> {
        Ok(self.pool.begin().await?)
    }

    /// Locks the alliance's row for the rest of `tx`; returns its last
    /// position and stored bytes, or `None` if there is no such alliance.
    async fn lock_alliance(
        tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
        alliance: AllianceId,
    ) -> Result<Option<(u64, u64)>, StorageError> {
        let row =
            sqlx::query("SELECT last_seq, stored_bytes FROM alliances WHERE id = $1 FOR UPDATE")
                .bind(&alliance.0[..])
                .fetch_optional(&mut **tx)
                .await?;
        Ok(row.map(|r| {
            (
                u64::try_from(r.get::<i64, _>(0)).unwrap_or(0),
                u64::try_from(r.get::<i64, _>(1)).unwrap_or(0),
            )
        }))
    }
}

/// Passes notices from the database to this instance's listeners. When the
/// connection drops, notices may be lost, so everyone is told to sync.
async fn forward_notices(mut listener: PgListener, changes: broadcast::Sender<Change>) {
    // Everyone is told twice per outage: when it starts, and at the first
    // notice after it (not every second while it lasts, which would make
    // every device sync every second).
    let mut lost = false;
    loop {
        match listener.try_recv().await {
            Ok(Some(notice)) => {
                if lost {
                    lost = false;
                    let _ = changes.send(Change::Everything);
                }
                if let Ok(alliance) = notice.payload().parse() {
                    let _ = changes.send(Change::Alliance(alliance));
                }
            }
            Ok(None) => {
                tracing::warn!("lost the database connection for change notices; reconnecting");
                if lost {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                } else {
                    lost = true;
                    let _ = changes.send(Change::Everything);
                }
            }
            Err(sqlx::Error::PoolClosed) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for change notices; retrying in 1 s");
                if !lost {
                    lost = true;
                    let _ = changes.send(Change::Everything);
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Tells every instance, when `tx` commits, that `alliance` changed.
async fn notify(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    alliance: AllianceId,
) -> Result<(), StorageError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(alliance.to_string())
        .execute(&mut **tx)
        .await?;
    Ok(())
}

shared_helpers!(sqlx::Postgres, PgRow);

/// Locks the alliances' rows for the rest of `tx`, in id order (see
/// group.rs: lock order).
async fn lock_alliances(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    alliances: &[AllianceId],
) -> Result<(), StorageError> {
    let mut ids: Vec<&[u8]> = alliances.iter().map(|a| &a.0[..]).collect();
    ids.sort();
    for id in ids {
        sqlx::query("SELECT 1 FROM alliances WHERE id = $1 FOR UPDATE")
            .bind(id)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// One append inside a batch's transaction. Returns its outcome and
/// whether it stored anything new; the caller keeps or rolls back its
/// savepoint by the outcome.
async fn append_in(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    job: &AppendJob,
) -> Result<(Append, bool), StorageError> {
    let AppendJob {
        alliance,
        device,
        blobs,
        quota_bytes,
        ..
    } = job;
    let Some((mut last, used)) = PostgresStorage::lock_alliance(tx, *alliance).await? else {
        return Ok((Append::NotActive, false));
    };
    let active: Option<bool> =
        sqlx::query_scalar("SELECT active FROM devices WHERE alliance_id = $1 AND device_id = $2")
            .bind(&alliance.0[..])
            .bind(&device.0[..])
            .fetch_optional(&mut **tx)
            .await?;
    if active != Some(true) {
        return Ok((Append::NotActive, false));
    }
    if covers_ahead(blobs, last) {
        return Ok((Append::CoversAhead, false));
    }
    let stored_at = ms(crate::now());
    let mut added = 0u64;
    let mut out = Vec::with_capacity(blobs.len());
    for blob in blobs {
        let inserted = sqlx::query(
            "INSERT INTO blobs (alliance_id, seq, blob_id, doc_id, device_id, data, scope_id, covers, batch_seq, stored_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (alliance_id, blob_id) DO NOTHING",
        )
        .bind(&alliance.0[..])
        .bind(position(last + 1))
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
            last += 1;
            added += blob.data.len() as u64;
            Appended::Stored
        } else {
            already_stored(tx, *alliance, *device, blob).await?
        };
        out.push(outcome);
    }
    if added == 0 || out.contains(&Appended::Conflict) {
        return Ok((Append::Done(out), false));
    }
    if used + added > *quota_bytes {
        return Ok((Append::OverQuota { used }, false));
    }
    sqlx::query(
        "UPDATE alliances SET last_seq = $1, stored_bytes = stored_bytes + $2 WHERE id = $3",
    )
    .bind(position(last))
    .bind(position(added))
    .bind(&alliance.0[..])
    .execute(&mut **tx)
    .await?;
    Ok((Append::Done(out), true))
}

impl Storage for PostgresStorage {
    shared_methods!(sqlx::Postgres);

    async fn append_log(
        &self,
        alliance: AllianceId,
        from: u64,
        entries: &[SignedEntry],
        devices: &[DeviceAccess],
        cutoffs: &[Cutoff],
        now: Timestamp,
    ) -> Result<LogAppend, StorageError> {
        let mut tx = self.pool.begin().await?;
        // Blob appends take the same lock: none slips in between the cutoff
        // check and the append.
        if Self::lock_alliance(&mut tx, alliance).await?.is_none()
            || !insert_entries(&mut tx, &alliance.0, from, entries).await?
        {
            return Ok(LogAppend::Conflict);
        }
        if cutoff_behind(&mut tx, alliance, cutoffs).await? {
            return Ok(LogAppend::CutoffBehind);
        }
        record_devices(&mut tx, &alliance.0, devices, now).await?;
        notify(&mut tx, alliance).await?;
        tx.commit().await?;
        Ok(LogAppend::Appended)
    }

    async fn scrub(&self) -> Result<(), StorageError> {
        // PostgreSQL never overwrites a deleted row in place: VACUUM FULL
        // writes the table (and its TOAST table) into new files and removes
        // the old ones. It locks the table while it runs.
        sqlx::query("VACUUM FULL blobs").execute(&self.pool).await?;
        Ok(())
    }

    async fn scrub_invites(&self) -> Result<(), StorageError> {
        // A small table: rewriting it is quick.
        sqlx::query("VACUUM FULL invites")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
