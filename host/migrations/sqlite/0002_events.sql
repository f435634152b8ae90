-- Every webhook request that reached /hooks/{connector}, accepted or not.
CREATE TABLE deliveries (
    id          INTEGER PRIMARY KEY,
    connector   TEXT NOT NULL,
    received_at INTEGER NOT NULL,          -- ms since 1970
    http_status INTEGER NOT NULL,          -- what we answered
    outcome     TEXT NOT NULL,             -- accepted | duplicate | refused
    reason      TEXT,                      -- why refused
    headers     TEXT NOT NULL,             -- JSON, secrets redacted
    body        BLOB NOT NULL,
    events      INTEGER NOT NULL DEFAULT 0 -- new events it produced
);
CREATE INDEX deliveries_outcome ON deliveries (outcome, id);

-- Normalized events; `seq` orders them.
CREATE TABLE events (
    seq         INTEGER PRIMARY KEY,
    connector   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    dedupe_id   TEXT NOT NULL,
    subject     TEXT,
    occurred_at TEXT,
    payload     TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    delivery_id INTEGER REFERENCES deliveries (id)
);
CREATE INDEX events_topic ON events (connector, topic, seq);

-- Dedupe keys outlive pruned events: kept at least 3 days.
CREATE TABLE dedupe (
    connector TEXT NOT NULL,
    dedupe_id TEXT NOT NULL,
    seen_at   INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,
    PRIMARY KEY (connector, dedupe_id)
);

-- One row per (event, subscriber): the dispatch state machine.
CREATE TABLE dispatches (
    event_seq   INTEGER NOT NULL REFERENCES events (seq),
    subscriber  TEXT NOT NULL,
    status      TEXT NOT NULL,             -- pending | delivered | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     INTEGER NOT NULL,
    last_error  TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (event_seq, subscriber)
);
CREATE INDEX dispatches_pending ON dispatches (status, subscriber, event_seq);

-- Every dispatch attempt, for `spoke events show`.
CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY,
    event_seq   INTEGER NOT NULL,
    subscriber  TEXT NOT NULL,
    at          INTEGER NOT NULL,
    ok          INTEGER NOT NULL,
    error       TEXT
);
CREATE INDEX attempts_event ON attempts (event_seq);
