-- Fingerprints of confirmed lockups (one sighting per event) and the advisory drafts
-- a repeated fingerprint makes (one per fingerprint). `record` is the whole draft as
-- JSON (controller/store/records.py), rewritten when a person decides.

CREATE TABLE lockup_sightings (
    event_id    TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    host_id     TEXT NOT NULL,
    mount       TEXT NOT NULL,
    at          REAL NOT NULL
);
CREATE INDEX lockup_sightings_by_fingerprint ON lockup_sightings (fingerprint, at);

CREATE TABLE advisory_drafts (
    id          TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    state       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    record      TEXT NOT NULL
);
