-- Hosts as they registered and last heartbeated, and the event log.
CREATE TABLE hosts (
    host_id            TEXT PRIMARY KEY,
    boot_id            TEXT NOT NULL,
    agent_version      TEXT NOT NULL,
    registered_at      REAL NOT NULL,
    last_heartbeat_at  REAL,
    -- hangwatch.v1.RegisterRequest, serialized: mounts and inventory.
    registration       BLOB NOT NULL,
    -- hangwatch.v1.HeartbeatRequest, serialized: the last health summary.
    last_heartbeat     BLOB
);

-- cursor is the global, gapless WatchEvents position: a plain rowid alias is
-- max+1 on every insert (one writer, no deletes), and INSERT OR IGNORE of a known
-- id takes none. (AUTOINCREMENT would burn a number on every ignored insert.)
CREATE TABLE events (
    cursor       INTEGER PRIMARY KEY,
    id           TEXT NOT NULL UNIQUE,
    host_id      TEXT NOT NULL,
    host_seq     INTEGER NOT NULL,
    mount        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    severity     INTEGER NOT NULL,
    occurred_at  REAL NOT NULL,
    received_at  REAL NOT NULL,
    -- hangwatch.v1.Event, serialized, without cursor and received_at.
    body         BLOB NOT NULL
);
CREATE INDEX events_host ON events (host_id, host_seq);
CREATE INDEX events_kind ON events (kind, cursor);
