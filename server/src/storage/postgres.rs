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

use super::{
    Append, Appended, Change, DeviceAccess, LogAppend, Page, Purged, Storage, StorageError,
    StoredInvite, array, change_channel, ms, position,
};

/// The channel every instance listens on; a notice's payload is an alliance id in hex.
const CHANNEL: &str = "kith_changes";

/// The PostgreSQL backend.
#[derive(Clone)]
pub struct PostgresStorage {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
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
        Ok(Self { pool, changes })
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
    loop {
        match listener.try_recv().await {
            Ok(Some(notice)) => {
                if let Ok(alliance) = notice.payload().parse() {
                    let _ = changes.send(Change::Alliance(alliance));
                }
            }
            Ok(None) => {
                tracing::warn!("lost the database connection for change notices; reconnecting");
                let _ = changes.send(Change::Everything);
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for change notices; retrying in 1 s");
                let _ = changes.send(Change::Everything);
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

/// Records the devices as the membership log now names them.
async fn record_devices(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    alliance: &[u8],
    devices: &[DeviceAccess],
    now: Timestamp,
) -> Result<(), StorageError> {
    for d in devices {
        sqlx::query(
            "INSERT INTO devices (alliance_id, device_id, role, added_at, active) VALUES ($1, $2, $3, $4, $5) \
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
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    alliance: &[u8],
    from: u64,
    entries: &[SignedEntry],
) -> Result<bool, StorageError> {
    for (offset, entry) in entries.iter().enumerate() {
        let inserted = sqlx::query(
            "INSERT INTO log_entries (alliance_id, idx, body, signature) VALUES ($1, $2, $3, $4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(alliance)
        .bind(position(from + offset as u64))
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

impl Storage for PostgresStorage {
    async fn create_alliance(
        &self,
        alliance: AllianceId,
        log: &[SignedEntry],
        devices: &[DeviceAccess],
        now: Timestamp,
    ) -> Result<bool, StorageError> {
        let mut tx = self.pool.begin().await?;
        let created = sqlx::query(
            "INSERT INTO alliances (id, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
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
        let row = sqlx::query(
            "SELECT role, active FROM devices WHERE alliance_id = $1 AND device_id = $2",
        )
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
            "SELECT body, signature FROM log_entries WHERE alliance_id = $1 AND idx >= $2 ORDER BY idx",
        )
        .bind(&alliance.0[..])
        .bind(position(from))
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
        let mut tx = self.pool.begin().await?;
        // Blob appends take the same lock: none slips in between the cutoff
        // check and the append.
        if Self::lock_alliance(&mut tx, alliance).await?.is_none()
            || !insert_entries(&mut tx, &alliance.0, from, entries).await?
        {
            return Ok(LogAppend::Conflict);
        }
        for cutoff in cutoffs {
            let held: Option<i64> = sqlx::query_scalar(
                "SELECT MAX(batch_seq) FROM blobs WHERE alliance_id = $1 AND device_id = $2 AND scope_id = $3",
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
        notify(&mut tx, alliance).await?;
        tx.commit().await?;
        Ok(LogAppend::Appended)
    }

    async fn put_invite(&self, id: InviteId, invite: StoredInvite) -> Result<bool, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO invites (id, alliance_id, token_sha256, role, package, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
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
            "SELECT alliance_id, token_sha256, role, package, expires_at, used_by FROM invites WHERE id = $1",
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
            sqlx::query("UPDATE invites SET used_by = $1 WHERE id = $2 AND used_by IS NULL")
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
        let mut tx = self.pool.begin().await?;
        let Some((mut last, used)) = Self::lock_alliance(&mut tx, alliance).await? else {
            return Ok(Append::NotActive);
        };
        let active: Option<bool> = sqlx::query_scalar(
            "SELECT active FROM devices WHERE alliance_id = $1 AND device_id = $2",
        )
        .bind(&alliance.0[..])
        .bind(&device.0[..])
        .fetch_optional(&mut *tx)
        .await?;
        if active != Some(true) {
            return Ok(Append::NotActive);
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
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let outcome = if inserted {
                last += 1;
                added += blob.data.len() as u64;
                Appended::Stored
            } else {
                let existing = sqlx::query(
                    "SELECT doc_id, data FROM blobs WHERE alliance_id = $1 AND blob_id = $2",
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
        if added == 0 {
            return Ok(Append::Done(out));
        }
        if used + added > quota_bytes {
            return Ok(Append::OverQuota { used });
        }
        sqlx::query(
            "UPDATE alliances SET last_seq = $1, stored_bytes = stored_bytes + $2 WHERE id = $3",
        )
        .bind(position(last))
        .bind(position(added))
        .bind(&alliance.0[..])
        .execute(&mut *tx)
        .await?;
        notify(&mut tx, alliance).await?;
        tx.commit().await?;
        Ok(Append::Done(out))
    }

    async fn fetch(
        &self,
        alliance: AllianceId,
        after: u64,
        limit: usize,
        scopes: Option<&[(ScopeId, u64)]>,
    ) -> Result<Page, StorageError> {
        let mut query = sqlx::QueryBuilder::<sqlx::Postgres>::new(
            "SELECT seq, blob_id, doc_id, data, scope_id, covers, batch_seq FROM blobs WHERE alliance_id = ",
        );
        query.push_bind(&alliance.0[..]);
        query.push(" AND seq > ").push_bind(position(after));
        if let Some(scopes) = scopes {
            query.push(" AND (FALSE");
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
                 WHERE alliance_id = $1 AND scope_id = $2 AND covers > $3 \
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
        let mut tx = self.pool.begin().await?;
        let mut purged = Purged::default();
        for device in devices {
            let sizes: Vec<i64> = sqlx::query_scalar(
                "DELETE FROM blobs WHERE alliance_id = $1 AND device_id = $2 RETURNING CAST(LENGTH(data) AS BIGINT)",
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
        sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes - $1 WHERE id = $2")
            .bind(position(purged.bytes))
            .bind(&alliance.0[..])
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn purge_superseded(&self, stored_before: Timestamp) -> Result<Purged, StorageError> {
        let mut tx = self.pool.begin().await?;
        // A blob is superseded when a checkpoint of its scope, old enough for
        // devices to have fetched what it covers, covers its position (older
        // checkpoints included).
        let rows = sqlx::query(
            "DELETE FROM blobs AS b WHERE EXISTS (SELECT 1 FROM blobs AS c WHERE c.alliance_id = b.alliance_id AND c.scope_id = b.scope_id AND c.covers IS NOT NULL AND c.stored_at < $1 AND ((b.covers IS NULL AND b.seq <= c.covers) OR b.covers < c.covers)) RETURNING alliance_id, CAST(LENGTH(data) AS BIGINT)",
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
            sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes - $1 WHERE id = $2")
                .bind(position(bytes))
                .bind(alliance)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(purged)
    }

    async fn scrub(&self) -> Result<(), StorageError> {
        // PostgreSQL never overwrites a deleted row in place: VACUUM FULL
        // writes the table (and its TOAST table) into new files and removes
        // the old ones. It locks the table while it runs.
        sqlx::query("VACUUM FULL blobs").execute(&self.pool).await?;
        Ok(())
    }

    async fn first_use(
        &self,
        device: DeviceId,
        nonce: [u8; 16],
        time: Timestamp,
    ) -> Result<bool, StorageError> {
        let inserted = sqlx::query(
            "INSERT INTO request_nonces (device_id, nonce, time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
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
        Ok(sqlx::query("DELETE FROM request_nonces WHERE time < $1")
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
fn blob_record(row: &PgRow) -> Result<BlobRecord, StorageError> {
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
