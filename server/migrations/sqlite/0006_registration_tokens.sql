-- One-use tokens an operator issues (`kith-server registration-token`), so
-- only people the operator chose can create alliances here. Only each
-- token's SHA-256 is kept.
CREATE TABLE registration_tokens (
    token_sha256 BLOB PRIMARY KEY,
    created_at   INTEGER NOT NULL,
    used_by      BLOB
) STRICT;
