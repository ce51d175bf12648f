-- Webhook delivery state: per sink progress through the event log, dead
-- letters, and the PagerDuty alerts each sink has open.

-- Per sink, the cursor of the last event handed off (delivered, dead-lettered or
-- filtered out): a restarted controller resumes each sink after it, from `events`.
CREATE TABLE webhook_deliveries (
    sink    TEXT PRIMARY KEY,
    cursor  INTEGER NOT NULL
);

-- Events a sink refused (4xx) or that failed every attempt. RetryDeadLetters
-- sets requeued_at; the sink's worker then resends the event and deletes the
-- row on success, or clears requeued_at again on failure.
CREATE TABLE webhook_dead_letters (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    sink         TEXT NOT NULL,
    event_id     TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT NOT NULL,
    failed_at    REAL NOT NULL,
    requeued_at  REAL
);
CREATE INDEX webhook_dead_letters_sink ON webhook_dead_letters (sink, requeued_at);

-- PagerDuty alerts a sink triggered and has not resolved: the resolve reuses the
-- trigger's dedup_key even if an incident was opened in between.
CREATE TABLE webhook_alerts (
    sink       TEXT NOT NULL,
    host_id    TEXT NOT NULL,
    mount      TEXT NOT NULL,
    dedup_key  TEXT NOT NULL,
    PRIMARY KEY (sink, host_id, mount)
);
