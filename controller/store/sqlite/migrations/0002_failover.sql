-- Groups, failovers, commands, audit, maintenance, incidents.

-- The controller owns each group's current primary and epoch; the config
-- declares the group, the first start seeds this row.
CREATE TABLE groups (
    name                TEXT PRIMARY KEY,
    primary_host        TEXT NOT NULL,
    epoch               INTEGER NOT NULL DEFAULT 0,
    auto_blocked_until  REAL
);

-- One row per failover; `record` is the whole machine record (JSON), the
-- columns are what queries filter on.
CREATE TABLE failovers (
    id          TEXT PRIMARY KEY,
    group_name  TEXT NOT NULL,
    state       TEXT NOT NULL,
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL,
    auto        INTEGER NOT NULL DEFAULT 0,
    record      TEXT NOT NULL
);
CREATE INDEX failovers_group ON failovers (group_name, created_at);

-- Commands for agents, kept until their result is reported: a new Commands
-- stream sends every command of its host that has no result yet.
CREATE TABLE commands (
    id           TEXT PRIMARY KEY,
    host_id      TEXT NOT NULL,
    created_at   REAL NOT NULL,
    -- hangwatch.v1.Command, serialized.
    body         BLOB NOT NULL,
    -- hangwatch.v1.CommandResult, serialized, once reported.
    result       BLOB,
    reported_at  REAL
);
CREATE INDEX commands_pending ON commands (host_id, reported_at);

-- Outcome of fence agents, by failover.
CREATE TABLE fence_results (
    failover_id  TEXT PRIMARY KEY,
    ok           INTEGER NOT NULL,
    detail       TEXT NOT NULL,
    at           REAL NOT NULL
);

-- Append-only; each row carries the previous row's hash (docs/design.md#5-authorised-and-audited).
CREATE TABLE audit (
    seq        INTEGER PRIMARY KEY,
    at         REAL NOT NULL,
    actor      TEXT NOT NULL,
    role       TEXT NOT NULL,
    action     TEXT NOT NULL,
    target     TEXT NOT NULL,
    detail     TEXT NOT NULL,
    allowed    INTEGER NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;

CREATE TABLE maintenance (
    scope   TEXT NOT NULL,     -- host | group | cluster
    target  TEXT NOT NULL,     -- '' for the cluster
    reason  TEXT NOT NULL,
    set_by  TEXT NOT NULL,
    set_at  REAL NOT NULL,
    until   REAL,
    PRIMARY KEY (scope, target)
);

CREATE TABLE settings (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL
);

CREATE TABLE incidents (
    id          TEXT PRIMARY KEY,
    group_name  TEXT NOT NULL,
    host_id     TEXT NOT NULL,
    started_at  REAL NOT NULL,
    ended_at    REAL,
    summary     TEXT NOT NULL
);
CREATE INDEX incidents_open ON incidents (group_name, ended_at);

ALTER TABLE hosts ADD COLUMN needs_clear TEXT NOT NULL DEFAULT '';
