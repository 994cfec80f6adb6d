-- The relay stores opaque ids and ciphertext only (see docs/PROTOCOL.md).
CREATE TABLE alliances (
    id           BYTEA PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    -- The position of the alliance's newest blob. Appends lock this row, so
    -- positions commit in order: a reader never sees a later blob before an
    -- earlier one.
    last_seq     BIGINT NOT NULL DEFAULT 0,
    -- Bytes of blob data the alliance holds, for its quota.
    stored_bytes BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE devices (
    alliance_id BYTEA NOT NULL REFERENCES alliances(id),
    device_id   BYTEA NOT NULL,
    role        TEXT NOT NULL,
    added_at    BIGINT NOT NULL,
    active      BOOLEAN NOT NULL DEFAULT TRUE,
    PRIMARY KEY (alliance_id, device_id)
);

-- The signed membership log, stored as the devices sent it.
CREATE TABLE log_entries (
    alliance_id BYTEA NOT NULL REFERENCES alliances(id),
    idx         BIGINT NOT NULL,
    body        BYTEA NOT NULL,
    signature   BYTEA NOT NULL,
    PRIMARY KEY (alliance_id, idx)
);

CREATE TABLE invites (
    id           BYTEA PRIMARY KEY,
    alliance_id  BYTEA NOT NULL REFERENCES alliances(id),
    token_sha256 BYTEA NOT NULL,
    role         TEXT NOT NULL,
    package      BYTEA NOT NULL,
    expires_at   BIGINT NOT NULL,
    used_by      BYTEA
);

CREATE TABLE blobs (
    alliance_id BYTEA NOT NULL REFERENCES alliances(id),
    seq         BIGINT NOT NULL,
    blob_id     BYTEA NOT NULL,
    doc_id      BYTEA NOT NULL,
    device_id   BYTEA NOT NULL,
    data        BYTEA NOT NULL,
    scope_id    BYTEA NOT NULL,
    covers      BIGINT,
    batch_seq   BIGINT,
    stored_at   BIGINT NOT NULL,
    PRIMARY KEY (alliance_id, seq),
    UNIQUE (alliance_id, blob_id)
);

CREATE INDEX blobs_by_scope ON blobs (alliance_id, scope_id, seq);
CREATE INDEX checkpoints_by_scope ON blobs (alliance_id, scope_id, covers) WHERE covers IS NOT NULL;
CREATE INDEX batches_by_device ON blobs (alliance_id, device_id, scope_id, batch_seq);

-- Request nonces, shared by every relay instance, so a captured request
-- cannot be sent again through another instance.
CREATE TABLE request_nonces (
    device_id BYTEA NOT NULL,
    nonce     BYTEA NOT NULL,
    time      BIGINT NOT NULL,
    PRIMARY KEY (device_id, nonce)
);

CREATE INDEX request_nonces_by_time ON request_nonces (time);
