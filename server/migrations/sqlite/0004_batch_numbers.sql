-- For a batch, its number in its device's chain in its scope: a removal
-- must name, for each scope, at least the last batch the relay holds from
-- the removed device, so no acknowledged write is refused afterwards.
ALTER TABLE blobs ADD COLUMN batch_seq INTEGER;

CREATE INDEX batches_by_device ON blobs (alliance_id, device_id, scope_id, batch_seq);
