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

use super::{
    Append, Appended, Change, DeviceAccess, LogAppend, Page, Purged, Storage, StorageError,
    StoredInvite, array, change_channel, ms, position,
};
use kith_core::membership::Cutoff;

/// The SQLite backend: one relay process per file.
#[derive(Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
    changes: broadcast::Sender<Change>,
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
        Ok(Self {
            pool,
            changes: change_channel(),
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

/// Records the devices as the membership log now names them.
async fn record_devices(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    alliance: &[u8],
    devices: &[DeviceAccess],
    now: Timestamp,
) -> Result<(), StorageError> {
    for d in devices {
        sqlx::query(
            "INSERT INTO devices (alliance_id, device_id, role, added_at, active) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (alliance_id, device_id) DO UPDATE SET role = excluded.role, active = excluded.active",
        )
        .bind(alliance)
        .bind(&d.device.0[..])
        .bind(d.role.as_str())
        .bind(ms(now))
        .bind(d.active)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Inserts log entries from index `from`; false if a place is taken.
async fn insert_entries(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    alliance: &[u8],
    from: u64,
    entries: &[SignedEntry],
) -> Result<bool, StorageError> {
    for (offset, entry) in entries.iter().enumerate() {
        let idx = i64::try_from(from + offset as u64).unwrap_or(i64::MAX);
        let inserted = sqlx::query(
            "INSERT INTO log_entries (alliance_id, idx, body, signature) VALUES (?, ?, ?, ?) \
             ON CONFLICT DO NOTHING",
        )
        .bind(alliance)
        .bind(idx)
        .bind(&entry.body)
        .bind(&entry.signature)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

impl Storage for SqliteStorage {
    async fn create_alliance(
        &self,
        alliance: AllianceId,
        log: &[SignedEntry],
        devices: &[DeviceAccess],
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(
            "INSERT INTO alliances (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&alliance.0[..])
        .bind(ms(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !created {
            return Ok(false);
        }
        insert_entries(&mut tx, &alliance.0, 0, log).await?;
        record_devices(&mut tx, &alliance.0, devices, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn device_access(
        &self,
        alliance: AllianceId,
        device: DeviceId,
    ) -> Result<Option<DeviceAccess>, StorageError> {
        let row =
            sqlx::query("SELECT role, active FROM devices WHERE alliance_id = ? AND device_id = ?")
                .bind(&alliance.0[..])
                .bind(&device.0[..])
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|r| {
            Some(DeviceAccess {
                device,
                role: Role::from_str(r.get::<&str, _>(0)).ok()?,
                active: r.get(1),
            })
        }))
    }

    async fn log(&self, alliance: AllianceId, from: u64) -> Result<Vec<SignedEntry>, StorageError> {
        let rows = sqlx::query(
            "SELECT body, signature FROM log_entries WHERE alliance_id = ? AND idx >= ? ORDER BY idx",
        )
        .bind(&alliance.0[..])
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| SignedEntry {
                body: r.get(0),
                signature: r.get(1),
            })
            .collect())
    }

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
        for cutoff in cutoffs {
            let held: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(batch_seq) FROM blobs WHERE alliance_id = ? AND device_id = ? AND scope_id = ?",
            )
            .bind(&alliance.0[..])
            .bind(&cutoff.device.0[..])
            .bind(&cutoff.scope.0[..])
            .fetch_one(&mut *tx)
            .await?;
            if held.is_some_and(|h| h > position(cutoff.seq)) {
                return Ok(LogAppend::CutoffBehind);
            }
        }
        record_devices(&mut tx, &alliance.0, devices, now).await?;
        tx.commit().await?;
        self.notify(alliance);
        Ok(LogAppend::Appended)
    }

    async fn put_invite(&self, id: InviteId, invite: StoredInvite) -> Result<bool, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO invites (id, alliance_id, token_sha256, role, package, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&id.0[..])
        .bind(&invite.alliance.0[..])
        .bind(&invite.token_sha256[..])
        .bind(invite.role.as_str())
        .bind(&invite.package)
        .bind(ms(invite.expires_at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn invite(&self, id: InviteId) -> Result<Option<StoredInvite>, StorageError> {
        let row = sqlx::query(
            "SELECT alliance_id, token_sha256, role, package, expires_at, used_by FROM invites WHERE id = ?",
        )
        .bind(&id.0[..])
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let used_by: Option<Vec<u8>> = row.get(5);
        Ok(Some(StoredInvite {
            alliance: AllianceId(array(row.get(0))?),
            token_sha256: array(row.get(1))?,
            role: Role::from_str(row.get::<&str, _>(2))
                .map_err(|e| StorageError(sqlx::Error::Decode(e.into())))?,
            package: row.get(3),
            expires_at: Timestamp(u64::try_from(row.get::<i64, _>(4)).unwrap_or(0)),
            used_by: used_by.map(array).transpose()?.map(DeviceId),
        }))
    }

    async fn consume_invite(
        &self,
        id: InviteId,
        device: DeviceId,
        _now: Timestamp,
    ) -> Result<bool, StorageError> {
        let changed =
            sqlx::query("UPDATE invites SET used_by = ? WHERE id = ? AND used_by IS NULL")
                .bind(&device.0[..])
                .bind(&id.0[..])
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(changed == 1)
    }

    async fn append(
        &self,
        alliance: AllianceId,
        device: DeviceId,
        blobs: &[BlobRecord],
        quota_bytes: u64,
    ) -> Result<Append, StorageError> {
        let mut tx = self.begin_write().await?;
        let active: Option<bool> = sqlx::query_scalar(
            "SELECT active FROM devices WHERE alliance_id = ? AND device_id = ?",
        )
        .bind(&alliance.0[..])
        .bind(&device.0[..])
        .fetch_optional(&mut *tx)
        .await?;
        if active != Some(true) {
            return Ok(Append::NotActive);
        }
        let used: i64 = sqlx::query_scalar("SELECT stored_bytes FROM alliances WHERE id = ?")
            .bind(&alliance.0[..])
            .fetch_one(&mut *tx)
            .await?;
        let used = u64::try_from(used).unwrap_or(0);
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
            .bind(ms(crate::now()))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let outcome = if inserted {
                added += blob.data.len() as u64;
                Appended::Stored
            } else {
                let existing = sqlx::query(
                    "SELECT doc_id, data FROM blobs WHERE alliance_id = ? AND blob_id = ?",
                )
                .bind(&alliance.0[..])
                .bind(&blob.id.0[..])
                .fetch_one(&mut *tx)
                .await?;
                let same = existing.get::<&[u8], _>(0) == &blob.doc.0[..]
                    && existing.get::<&[u8], _>(1) == &blob.data[..];
                if same {
                    Appended::Stored
                } else {
                    Appended::Conflict
                }
            };
            out.push(outcome);
        }
        if added > 0 && used + added > quota_bytes {
            // Dropping the transaction rolls it back.
            return Ok(Append::OverQuota { used });
        }
        sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes + ? WHERE id = ?")
            .bind(position(added))
            .bind(&alliance.0[..])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        if added > 0 {
            self.notify(alliance);
        }
        Ok(Append::Done(out))
    }

    async fn fetch(
        &self,
        alliance: AllianceId,
        after: u64,
        limit: usize,
        scopes: Option<&[(ScopeId, u64)]>,
    ) -> Result<Page, StorageError> {
        let mut query = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
            "SELECT seq, blob_id, doc_id, data, scope_id, covers, batch_seq FROM blobs WHERE alliance_id = ",
        );
        query.push_bind(&alliance.0[..]);
        query.push(" AND seq > ").push_bind(position(after));
        if let Some(scopes) = scopes {
            query.push(" AND (0");
            for (scope, from) in scopes {
                query.push(" OR (scope_id = ").push_bind(&scope.0[..]);
                query
                    .push(" AND seq > ")
                    .push_bind(position(*from))
                    .push(")");
            }
            query.push(")");
        }
        query
            .push(" ORDER BY seq LIMIT ")
            .push_bind(position(limit as u64 + 1));
        let rows = query.build().fetch_all(&self.pool).await?;
        let more = rows.len() > limit;
        let mut next = after;
        let mut blobs = Vec::with_capacity(rows.len().min(limit));
        for row in rows.into_iter().take(limit) {
            next = u64::try_from(row.get::<i64, _>(0)).unwrap_or(next);
            blobs.push(blob_record(&row)?);
        }
        Ok(Page { blobs, next, more })
    }

    async fn checkpoints(
        &self,
        alliance: AllianceId,
        scopes: &[(ScopeId, u64)],
    ) -> Result<Vec<BlobRecord>, StorageError> {
        let mut found = Vec::new();
        for (scope, past) in scopes {
            let row = sqlx::query(
                "SELECT seq, blob_id, doc_id, data, scope_id, covers, batch_seq FROM blobs \
                 WHERE alliance_id = ? AND scope_id = ? AND covers > ? \
                 ORDER BY covers DESC, seq DESC LIMIT 1",
            )
            .bind(&alliance.0[..])
            .bind(&scope.0[..])
            .bind(position(*past))
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                found.push(blob_record(&row)?);
            }
        }
        Ok(found)
    }

    async fn purge_written_by(
        &self,
        alliance: AllianceId,
        devices: &[DeviceId],
    ) -> Result<Purged, StorageError> {
        let mut tx = self.begin_write().await?;
        let mut purged = Purged::default();
        for device in devices {
            let sizes: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM blobs WHERE alliance_id = ? AND device_id = ? RETURNING CAST(LENGTH(data) AS BIGINT)",
            )
            .bind(&alliance.0[..])
            .bind(&device.0[..])
            .fetch_all(&mut *tx)
            .await?;
            purged.blobs += sizes.len() as u64;
            purged.bytes += sizes
                .iter()
                .map(|&n| u64::try_from(n).unwrap_or(0))
                .sum::<u64>();
        }
        sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes - ? WHERE id = ?")
            .bind(position(purged.bytes))
            .bind(&alliance.0[..])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn purge_superseded(&self, stored_before: Timestamp) -> Result<Purged, StorageError> {
        let mut tx = self.begin_write().await?;
        // A blob is superseded when a checkpoint of its scope, old enough for
        // devices to have fetched what it covers, covers its position (older
        // checkpoints included).
        let rows = sqlx::query(
            "DELETE FROM blobs AS b WHERE EXISTS (SELECT 1 FROM blobs AS c WHERE c.alliance_id = b.alliance_id AND c.scope_id = b.scope_id AND c.covers IS NOT NULL AND c.stored_at < ? AND ((b.covers IS NULL AND b.seq <= c.covers) OR b.covers < c.covers)) RETURNING alliance_id, CAST(LENGTH(data) AS BIGINT)",
        )
        .bind(ms(stored_before))
        .fetch_all(&mut *tx)
        .await?;
        let mut purged = Purged::default();
        let mut by_alliance: std::collections::BTreeMap<Vec<u8>, u64> = Default::default();
        for row in rows {
            let bytes = u64::try_from(row.get::<i64, _>(1)).unwrap_or(0);
            purged.blobs += 1;
            purged.bytes += bytes;
            *by_alliance.entry(row.get(0)).or_default() += bytes;
        }
        for (alliance, bytes) in by_alliance {
            sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes - ? WHERE id = ?")
                .bind(position(bytes))
                .bind(alliance)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(purged)
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

    async fn first_use(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        time: Timestamp,
    ) -> Result<bool, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO request_nonces (device_id, nonce, time) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&device.0[..])
        .bind(&nonce[..])
        .bind(ms(time))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn forget_nonces(&self, before: Timestamp) -> Result<u64, StorageError> {
        Ok(sqlx::query("DELETE FROM request_nonces WHERE time < ?")
            .bind(ms(before))
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    async fn ready(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn changes(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }
}

/// A blob row (seq, blob_id, doc_id, data, scope_id, covers, batch_seq) as a record.
fn blob_record(row: &sqlx::sqlite::SqliteRow) -> Result<BlobRecord, StorageError> {
    Ok(BlobRecord {
        id: BlobId(array(row.get(1))?),
        doc: DocId(array(row.get(2))?),
        data: row.get(3),
        scope: ScopeId(array(row.get(4))?),
        covers: row
            .get::<Option<i64>, _>(5)
            .map(|c| u64::try_from(c).unwrap_or(0)),
        seq: row
            .get::<Option<i64>, _>(6)
            .map(|c| u64::try_from(c).unwrap_or(0)),
    })
}
