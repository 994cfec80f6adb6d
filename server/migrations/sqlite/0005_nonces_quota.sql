-- Request nonces, kept while a request could still arrive, so a captured
-- request cannot be sent again (even after a restart).
CREATE TABLE request_nonces (
    device_id BLOB NOT NULL,
    nonce     BLOB NOT NULL,
    time      INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
) STRICT, WITHOUT ROWID;

CREATE INDEX request_nonces_by_time ON request_nonces (time);

-- Bytes of blob data each alliance holds, for its quota.
ALTER TABLE alliances ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
UPDATE alliances SET stored_bytes =
    (SELECT COALESCE(SUM(LENGTH(data)), 0) FROM blobs WHERE blobs.alliance_id = alliances.id);

-- When each blob arrived, so superseded blobs are purged only after devices
-- had time to fetch them.
ALTER TABLE blobs ADD COLUMN stored_at INTEGER NOT NULL DEFAULT 0;
-- Blobs stored before this column count as stored now, so the retention
-- period runs from the upgrade rather than deleting at once.
UPDATE blobs SET stored_at = CAST(strftime('%s', 'now') AS INTEGER) * 1000;
