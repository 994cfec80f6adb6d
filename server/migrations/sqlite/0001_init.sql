-- The relay stores opaque ids and ciphertext only.
CREATE TABLE alliances (
    id          BLOB PRIMARY KEY,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE devices (
    alliance_id BLOB NOT NULL REFERENCES alliances(id),
    device_id   BLOB NOT NULL,
    role        TEXT NOT NULL,
    added_at    INTEGER NOT NULL,
    PRIMARY KEY (alliance_id, device_id)
) STRICT;

CREATE TABLE invites (
    id           BLOB PRIMARY KEY,
    alliance_id  BLOB NOT NULL REFERENCES alliances(id),
    token_sha256 BLOB NOT NULL,
    role         TEXT NOT NULL,
    package      BLOB NOT NULL,
    expires_at   INTEGER NOT NULL,
    used_by      BLOB
) STRICT;

CREATE TABLE blobs (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    alliance_id BLOB NOT NULL REFERENCES alliances(id),
    blob_id     BLOB NOT NULL,
    doc_id      BLOB NOT NULL,
    device_id   BLOB NOT NULL,
    data        BLOB NOT NULL,
    UNIQUE (alliance_id, blob_id)
) STRICT;

CREATE INDEX blobs_by_alliance ON blobs (alliance_id, seq);
