//! What both backends do with the same SQL. Placeholders are `$1`, `$2`,
//! ... in order of first use: PostgreSQL numbers them, and SQLite reads
//! them as named parameters bound in that same order.

/// Free functions shared by the backends, for database `$db` with rows `$row`.
macro_rules! shared_helpers {
    ($db:ty, $row:ty) => {
        /// Records the devices as the membership log now names them.
        async fn record_devices(
            tx: &mut sqlx::Transaction<'_, $db>,
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
            tx: &mut sqlx::Transaction<'_, $db>,
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

        /// Whether a removed device holds a batch numbered past the cutoff a
        /// removal gives for its scope (the removal would refuse writing the
        /// relay already acknowledged).
        async fn cutoff_behind(
            tx: &mut sqlx::Transaction<'_, $db>,
            alliance: AllianceId,
            cutoffs: &[Cutoff],
        ) -> Result<bool, StorageError> {
            for cutoff in cutoffs {
                let held: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(batch_seq) FROM blobs WHERE alliance_id = $1 AND device_id = $2 AND scope_id = $3",
                )
                .bind(&alliance.0[..])
                .bind(&cutoff.device.0[..])
                .bind(&cutoff.scope.0[..])
                .fetch_one(&mut **tx)
                .await?;
                if held.is_some_and(|h| h > position(cutoff.seq)) {
                    return Ok(true);
                }
            }
            Ok(false)
        }

        /// For a blob whose id is taken: a retry (see
        /// `relay_rules::is_same_blob`), or a different blob under that id.
        async fn already_stored(
            tx: &mut sqlx::Transaction<'_, $db>,
            alliance: AllianceId,
            device: DeviceId,
            blob: &BlobRecord,
        ) -> Result<Appended, StorageError> {
            let existing = sqlx::query(
                "SELECT seq, blob_id, doc_id, data, scope_id, covers, batch_seq, device_id \
                 FROM blobs WHERE alliance_id = $1 AND blob_id = $2",
            )
            .bind(&alliance.0[..])
            .bind(&blob.id.0[..])
            .fetch_one(&mut **tx)
            .await?;
            let stored_by = DeviceId(array(existing.get(7))?);
            let same = kith_core::relay_rules::is_same_blob(
                (stored_by, &blob_record(&existing)?),
                (device, blob),
            );
            Ok(if same {
                Appended::Stored
            } else {
                Appended::Conflict
            })
        }

        /// Records a request nonce in `tx`; false when it was recorded before.
        async fn insert_nonce(
            tx: &mut sqlx::Transaction<'_, $db>,
            nonce: &RequestNonce,
        ) -> Result<bool, StorageError> {
            let inserted = sqlx::query(
                "INSERT INTO request_nonces (device_id, nonce, time) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            )
            .bind(&nonce.device.0[..])
            .bind(&nonce.nonce[..])
            .bind(ms(nonce.time))
            .execute(&mut **tx)
            .await?
            .rows_affected();
            Ok(inserted == 1)
        }

        /// Performs a batch of nonces and appends in `tx` (see group.rs), in
        /// lock order. Each append runs in its own savepoint, so a refused
        /// one leaves the others. Returns what was decided and the
        /// alliances that gained blobs, to be told once `tx` commits.
        async fn write_batch(
            tx: &mut sqlx::Transaction<'static, $db>,
            nonces: &[RequestNonce],
            appends: &[&AppendJob],
        ) -> Result<(Decided, Vec<AllianceId>), StorageError> {
            let order = LockOrder::of(nonces, appends);
            let mut fresh = vec![false; nonces.len()];
            let mut replayed = vec![false; appends.len()];
            for (nonce, from) in &order.nonces {
                let new = insert_nonce(tx, nonce).await?;
                match *from {
                    NonceFrom::Job(i) => fresh[i] = new,
                    NonceFrom::Append(i) => replayed[i] = !new,
                }
            }
            let mut outcomes: Vec<Option<Append>> = vec![None; appends.len()];
            let mut changed: Vec<AllianceId> = Vec::new();
            for &i in &order.appends {
                if replayed[i] {
                    outcomes[i] = Some(Append::Replayed);
                    continue;
                }
                let job = appends[i];
                let mut savepoint = sqlx::Acquire::begin(&mut **tx).await?;
                let (outcome, added) = append_in(&mut savepoint, job).await?;
                if matches!(&outcome, Append::Done(out) if !out.contains(&Appended::Conflict)) {
                    savepoint.commit().await?;
                    if added && changed.last() != Some(&job.alliance) {
                        changed.push(job.alliance);
                    }
                } else {
                    savepoint.rollback().await?;
                }
                outcomes[i] = Some(outcome);
            }
            let appends = outcomes
                .into_iter()
                .map(|o| o.unwrap_or(Append::Replayed))
                .collect();
            Ok((Decided { nonces: fresh, appends }, changed))
        }

        /// A blob row (seq, blob_id, doc_id, data, scope_id, covers, batch_seq) as a record.
        fn blob_record(row: &$row) -> Result<BlobRecord, StorageError> {
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
    };
}

/// Storage methods shared by the backends: inside `impl Storage`, for a type
/// with `pool`, `changes`, `group` and `begin_write()`.
macro_rules! shared_methods {
    ($db:ty) => {
        async fn create_alliance(
            &self,
            alliance: AllianceId,
            log: &[SignedEntry],
            devices: &[DeviceAccess],
            now: Timestamp,
        ) -> Result<bool, StorageError> {
            let mut tx = self.begin_write().await?;
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

        async fn add_registration_token(
            &self,
            token_sha256: [u8; 32],
            now: Timestamp,
        ) -> Result<(), StorageError> {
            sqlx::query("INSERT INTO registration_tokens (token_sha256, created_at) VALUES ($1, $2)")
                .bind(&token_sha256[..])
                .bind(ms(now))
                .execute(&self.pool)
                .await?;
            Ok(())
        }

        async fn use_registration_token(
            &self,
            token_sha256: [u8; 32],
            alliance: AllianceId,
        ) -> Result<bool, StorageError> {
            let spent = sqlx::query(
                "UPDATE registration_tokens SET used_by = $1 \
                 WHERE token_sha256 = $2 AND (used_by IS NULL OR used_by = $1)",
            )
            .bind(&alliance.0[..])
            .bind(&token_sha256[..])
            .execute(&self.pool)
            .await?
            .rows_affected();
            Ok(spent == 1)
        }

        async fn drop_invite_packages(
            &self,
            alliance: AllianceId,
            invites: &[InviteId],
        ) -> Result<u64, StorageError> {
            let mut dropped = 0;
            for id in invites {
                dropped += sqlx::query(
                    "UPDATE invites SET package = $1 WHERE id = $2 AND alliance_id = $3 AND length(package) > 0",
                )
                .bind(&[][..] as &[u8])
                .bind(&id.0[..])
                .bind(&alliance.0[..])
                .execute(&self.pool)
                .await?
                .rows_affected();
            }
            Ok(dropped)
        }

        async fn drop_stale_invite_packages(
            &self,
            expired_before: Timestamp,
        ) -> Result<u64, StorageError> {
            Ok(sqlx::query(
                "UPDATE invites SET package = $1 WHERE expires_at < $2 AND length(package) > 0",
            )
            .bind(&[][..] as &[u8])
            .bind(ms(expired_before))
            .execute(&self.pool)
            .await?
            .rows_affected())
        }

        async fn fetch(
            &self,
            alliance: AllianceId,
            after: u64,
            limit: usize,
            scopes: Option<&[(ScopeId, u64)]>,
        ) -> Result<Page, StorageError> {
            let mut query = sqlx::QueryBuilder::<$db>::new(
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
            private: &[ScopeId],
        ) -> Result<Purged, StorageError> {
            let mut tx = self.begin_write().await?;
            // The alliance first, as appends take it (group.rs: lock order).
            lock_alliances(&mut tx, &[alliance]).await?;
            let mut sizes: Vec<i64> = Vec::new();
            for device in devices {
                sizes.extend(
                    sqlx::query_scalar::<_, i64>(
                        "DELETE FROM blobs WHERE alliance_id = $1 AND device_id = $2 AND covers IS NULL \
                         RETURNING CAST(LENGTH(data) AS BIGINT)",
                    )
                    .bind(&alliance.0[..])
                    .bind(&device.0[..])
                    .fetch_all(&mut *tx)
                    .await?,
                );
                for scope in private {
                    sizes.extend(
                        sqlx::query_scalar::<_, i64>(
                            "DELETE FROM blobs WHERE alliance_id = $1 AND device_id = $2 AND scope_id = $3 \
                             RETURNING CAST(LENGTH(data) AS BIGINT)",
                        )
                        .bind(&alliance.0[..])
                        .bind(&device.0[..])
                        .bind(&scope.0[..])
                        .fetch_all(&mut *tx)
                        .await?,
                    );
                }
            }
            let purged = Purged {
                blobs: sizes.len() as u64,
                bytes: sizes.iter().map(|&n| u64::try_from(n).unwrap_or(0)).sum(),
            };
            sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes - $1 WHERE id = $2")
                .bind(position(purged.bytes))
                .bind(&alliance.0[..])
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(purged)
        }

        async fn purge_superseded(&self, stored_before: Timestamp) -> Result<Purged, StorageError> {
            // A blob is superseded when a checkpoint of its scope, old enough for
            // devices to have fetched what it covers, covers its position (older
            // checkpoints included).
            const SUPERSEDED: &str = "EXISTS (SELECT 1 FROM blobs AS c WHERE c.alliance_id = b.alliance_id AND c.scope_id = b.scope_id AND c.covers IS NOT NULL AND c.stored_at < $1 AND ((b.covers IS NULL AND b.seq <= c.covers) OR b.covers < c.covers))";
            let mut alliances: Vec<Vec<u8>> = sqlx::query_scalar(&format!(
                "SELECT DISTINCT alliance_id FROM blobs AS b WHERE {SUPERSEDED}"
            ))
            .bind(ms(stored_before))
            .fetch_all(&self.pool)
            .await?;
            alliances.sort();
            // One alliance per transaction, its lock taken first, as appends
            // take it (group.rs: lock order); appends elsewhere go on meanwhile.
            let mut purged = Purged::default();
            for alliance in alliances {
                let id = AllianceId(array(alliance)?);
                let mut tx = self.begin_write().await?;
                lock_alliances(&mut tx, &[id]).await?;
                let sizes: Vec<i64> = sqlx::query_scalar(&format!(
                    "DELETE FROM blobs AS b WHERE {SUPERSEDED} AND b.alliance_id = $2 RETURNING CAST(LENGTH(data) AS BIGINT)"
                ))
                .bind(ms(stored_before))
                .bind(&id.0[..])
                .fetch_all(&mut *tx)
                .await?;
                let bytes: u64 = sizes.iter().map(|&n| u64::try_from(n).unwrap_or(0)).sum();
                sqlx::query("UPDATE alliances SET stored_bytes = stored_bytes - $1 WHERE id = $2")
                    .bind(position(bytes))
                    .bind(&id.0[..])
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                purged.blobs += sizes.len() as u64;
                purged.bytes += bytes;
            }
            Ok(purged)
        }

        async fn first_use(&self, nonce: RequestNonce) -> Result<bool, StorageError> {
            self.group.first_use(nonce).await
        }

        async fn nonce_seen(&self, nonce: RequestNonce) -> Result<bool, StorageError> {
            let seen: Option<i64> = sqlx::query_scalar(
                "SELECT CAST(1 AS BIGINT) FROM request_nonces WHERE device_id = $1 AND nonce = $2",
            )
            .bind(&nonce.device.0[..])
            .bind(&nonce.nonce[..])
            .fetch_optional(&self.pool)
            .await?;
            Ok(seen.is_some())
        }

        async fn append(
            &self,
            alliance: AllianceId,
            device: DeviceId,
            blobs: &[BlobRecord],
            quota_bytes: u64,
            nonce: Option<RequestNonce>,
        ) -> Result<Append, StorageError> {
            self.group
                .append(AppendJob {
                    alliance,
                    device,
                    blobs: blobs.to_vec(),
                    quota_bytes,
                    nonce,
                })
                .await
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
    };
}

pub(super) use {shared_helpers, shared_methods};
