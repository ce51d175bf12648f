-- Advisories (known-bad kernel/filesystem versions) and upgrade plans.

CREATE TABLE advisories (
    id          TEXT PRIMARY KEY,
    -- A range over kernel releases (controller/kernelversion.py), e.g. ">=A,<B".
    kernel_range TEXT NOT NULL,
    fs_type     TEXT NOT NULL DEFAULT '',
    reason      TEXT NOT NULL DEFAULT '',
    url         TEXT NOT NULL DEFAULT '',
    created_at  REAL NOT NULL,
    created_by  TEXT NOT NULL
);

-- One row per plan; `record` is the whole plan with its hosts (JSON, see
-- controller/upgrades/codec.py), written in one statement at every step so a
-- restarted controller resumes exactly where the plan was.
CREATE TABLE upgrade_plans (
    name        TEXT PRIMARY KEY,
    state       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    record      TEXT NOT NULL
);
