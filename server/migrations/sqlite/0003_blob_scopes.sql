-- Each blob's scope (an opaque id), so a device fetches only what it can
-- read, and, for a checkpoint, the position up to which it covers its scope.
ALTER TABLE blobs ADD COLUMN scope_id BLOB NOT NULL DEFAULT x'';
ALTER TABLE blobs ADD COLUMN covers INTEGER;

CREATE INDEX blobs_by_scope ON blobs (alliance_id, scope_id, seq);
CREATE INDEX checkpoints_by_scope ON blobs (alliance_id, scope_id, covers) WHERE covers IS NOT NULL;
