-- The signed membership log, stored as the devices sent it. The devices
-- table becomes what the relay derives from the log, for authorisation.
CREATE TABLE log_entries (
    alliance_id BLOB NOT NULL REFERENCES alliances(id),
    idx         INTEGER NOT NULL,
    body        BLOB NOT NULL,
    signature   BLOB NOT NULL,
    PRIMARY KEY (alliance_id, idx)
) STRICT;

ALTER TABLE devices ADD COLUMN active INTEGER NOT NULL DEFAULT 1;
