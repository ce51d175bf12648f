-- Incidents as customers saw them: the group mount whose lockup opened one, the
-- kernel and filesystem it ran on (so an advisory added later still matches it),
-- and when service was restored, which may be before the incident is closed.
ALTER TABLE incidents ADD COLUMN mount TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN kernel TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN fs_type TEXT NOT NULL DEFAULT '';
ALTER TABLE incidents ADD COLUMN restored_at REAL;

-- Ids another system gave to what a sink created there (the Statuspage incident
-- of an incident): later updates go to the same one.
CREATE TABLE webhook_remote_ids (
    sink       TEXT NOT NULL,
    key        TEXT NOT NULL,
    remote_id  TEXT NOT NULL,
    PRIMARY KEY (sink, key)
);
