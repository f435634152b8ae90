-- Durable flows: one row per instance (a script's flow function and a
-- business key), its durable calls by ordinal, and the events routed to
-- flows that wait for them.
CREATE TABLE flows (
    id INTEGER PRIMARY KEY,
    script TEXT NOT NULL,
    function TEXT NOT NULL,
    key TEXT NOT NULL,
    input TEXT NOT NULL,
    -- ready | waiting | in_doubt | done | failed
    status TEXT NOT NULL,
    -- When a waiting flow wakes (a sleep ends, a poll is due, a wait times out).
    wake_at INTEGER,
    -- What it waits for, for operators (JSON).
    waiting_for TEXT,
    waiting_since INTEGER,
    current_step TEXT,
    result TEXT,
    last_error TEXT,
    -- Failed wakes in a row (transient errors back off on this).
    attempts INTEGER NOT NULL DEFAULT 0,
    wakes INTEGER NOT NULL DEFAULT 0,
    -- Set when an event for it arrives while it runs: its next settle
    -- makes it ready instead of waiting.
    nudged INTEGER NOT NULL DEFAULT 0,
    version INTEGER NOT NULL,
    lease_owner TEXT,
    lease_until INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (script, function, key)
);
CREATE INDEX flows_due ON flows (status, wake_at);

CREATE TABLE flow_steps (
    flow_id INTEGER NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL,
    -- step | sleep | wait | poll
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- started (intent recorded, result not yet) | waiting | done | rerun
    status TEXT NOT NULL,
    result TEXT,
    -- Kind-specific: a sleep's end, a wait's pattern and deadline, a poll's attempts.
    detail TEXT,
    started_at INTEGER NOT NULL,
    ended_at INTEGER,
    PRIMARY KEY (flow_id, ordinal)
);

-- Events for a script's flows. A row is claimed by the waiting flow it
-- matches; an unclaimed one waits for a flow to reach its wait_event.
CREATE TABLE flow_inbox (
    id INTEGER PRIMARY KEY,
    script TEXT NOT NULL,
    connector TEXT NOT NULL,
    topic TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    flow_id INTEGER,
    ordinal INTEGER,
    UNIQUE (script, connector, topic, event_id)
);
CREATE INDEX flow_inbox_open ON flow_inbox (script, connector, topic, flow_id);
CREATE INDEX flow_inbox_claimed ON flow_inbox (flow_id, ordinal);
