-- The whole schema as SQLite has it after its migrations 0001-0011, in one
-- file (PostgreSQL started there). Times are ms since 1970 (BIGINT); flags
-- are BIGINT 0/1 like SQLite's, so the SQL both engines share (the event
-- status) reads the same. JSON is kept as TEXT, as SQLite keeps it. Keys
-- that are listed by range or in order are COLLATE "C": byte order, which is
-- SQLite's, whatever the database's locale.

-- Per-connector key-value state for plugins (the WIT `kv` interface).
CREATE TABLE kv (
    connector TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BYTEA NOT NULL,
    updated   BIGINT NOT NULL,
    PRIMARY KEY (connector, key)
);

-- What each connector holds in kv, for its quota (kept in the same
-- transaction as every kv write; its row is locked FOR UPDATE there).
CREATE TABLE kv_usage (
    connector TEXT PRIMARY KEY,
    keys      BIGINT NOT NULL,
    bytes     BIGINT NOT NULL
);

-- Every webhook request that reached /hooks/{connector}, accepted or not.
CREATE TABLE deliveries (
    id          BIGSERIAL PRIMARY KEY,
    connector   TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    http_status BIGINT NOT NULL,
    outcome     TEXT NOT NULL,             -- accepted | duplicate | refused
    reason      TEXT,
    headers     TEXT NOT NULL,             -- JSON, secrets redacted
    body        BYTEA NOT NULL,
    events      BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX deliveries_outcome ON deliveries (outcome, id);
CREATE INDEX deliveries_received ON deliveries (received_at);

-- Normalized events; `seq` orders them. `routed` = 0 until matched to
-- subscribers (dispatch/route.rs).
CREATE TABLE events (
    seq         BIGSERIAL PRIMARY KEY,
    connector   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    dedupe_id   TEXT NOT NULL,
    subject     TEXT,
    occurred_at TEXT,
    payload     TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    delivery_id BIGINT REFERENCES deliveries (id),
    routed      BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX events_topic ON events (connector, topic, seq);
CREATE INDEX events_unrouted ON events (seq) WHERE routed = 0;
CREATE INDEX events_received ON events (received_at);
CREATE INDEX events_delivery ON events (delivery_id);

-- Dedupe keys outlive pruned events: kept at least 3 days. The primary key
-- is what makes a dedupe id count once across hosts (INSERT ... ON CONFLICT
-- DO NOTHING waits for a concurrent insert of the same key).
CREATE TABLE dedupe (
    connector TEXT NOT NULL,
    dedupe_id TEXT NOT NULL,
    seen_at   BIGINT NOT NULL,
    event_seq BIGINT NOT NULL,
    PRIMARY KEY (connector, dedupe_id)
);
CREATE INDEX dedupe_seen ON dedupe (seen_at);

-- One row per (event, subscriber): the dispatch state machine. A lane is
-- (subscriber, connector, topic, subject); a host claims a head for a lease.
CREATE TABLE dispatches (
    event_seq     BIGINT NOT NULL REFERENCES events (seq),
    subscriber    TEXT COLLATE "C" NOT NULL,
    status        TEXT NOT NULL,           -- pending | delivered | dead
    attempts      BIGINT NOT NULL DEFAULT 0,
    next_at       BIGINT NOT NULL,
    last_error    TEXT,
    updated_at    BIGINT NOT NULL,
    connector     TEXT NOT NULL DEFAULT '',
    topic         TEXT NOT NULL DEFAULT '',
    subject       TEXT NOT NULL DEFAULT '',
    claimed_by    TEXT,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (event_seq, subscriber)
);
CREATE INDEX dispatches_pending ON dispatches (status, subscriber, event_seq);
CREATE INDEX dispatches_lane ON dispatches (status, subscriber, connector, topic, subject, event_seq);

-- Every dispatch attempt, for `spoke events show`.
CREATE TABLE attempts (
    id          BIGSERIAL PRIMARY KEY,
    event_seq   BIGINT NOT NULL,
    subscriber  TEXT NOT NULL,
    at          BIGINT NOT NULL,
    ok          BIGINT NOT NULL,
    error       TEXT
);
CREATE INDEX attempts_event ON attempts (event_seq);

-- One row per script run; `machine` and `pid` say who runs it, so only that
-- machine judges whether an unfinished run was interrupted.
CREATE TABLE runs (
    id          BIGSERIAL PRIMARY KEY,
    script      TEXT NOT NULL,
    version     BIGINT NOT NULL,
    function    TEXT NOT NULL,
    trigger     TEXT NOT NULL,
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    outcome     TEXT,               -- ok | error | interrupted | NULL while running
    error       TEXT,
    location    TEXT,
    steps       TEXT NOT NULL DEFAULT '[]',
    pid         BIGINT,
    logs        TEXT NOT NULL DEFAULT '[]',
    flow_key    TEXT,
    machine     TEXT
);
CREATE INDEX runs_script ON runs (script, id);
CREATE INDEX runs_started ON runs (started_at);

-- Results of `step(key, ...)`, scoped per script: once stored, never run again.
CREATE TABLE steps (
    script  TEXT NOT NULL,
    key     TEXT NOT NULL,
    result  TEXT NOT NULL,
    run_id  BIGINT,
    at      BIGINT NOT NULL,
    PRIMARY KEY (script, key)
);
CREATE INDEX steps_at ON steps (at);

-- `state::get/set/delete`; `state::list` takes a key range.
CREATE TABLE script_state (
    script  TEXT NOT NULL,
    key     TEXT COLLATE "C" NOT NULL,
    value   TEXT NOT NULL,
    updated BIGINT NOT NULL,
    PRIMARY KEY (script, key)
);

-- What the hosts have loaded, for `spoke scripts`.
CREATE TABLE scripts (
    name           TEXT COLLATE "C" PRIMARY KEY,
    version        BIGINT NOT NULL,
    loaded_at      BIGINT NOT NULL,
    triggers       TEXT NOT NULL,
    error          TEXT,
    error_at       BIGINT,
    removed_at     BIGINT,
    trigger_change TEXT,
    hash           TEXT
);

-- The rate ledger (host/src/rate_limit/ledger.rs).
CREATE TABLE rate_spent (
    bucket   TEXT   NOT NULL,
    window_s BIGINT NOT NULL,
    granule  BIGINT NOT NULL,
    n        BIGINT NOT NULL,
    PRIMARY KEY (bucket, window_s, granule)
);
CREATE TABLE rate_in_flight (
    ticket      BIGINT NOT NULL,
    bucket      TEXT   NOT NULL,
    n           BIGINT NOT NULL,
    lease_until BIGINT NOT NULL,
    PRIMARY KEY (bucket, ticket)
);
CREATE TABLE rate_pauses (
    scope    TEXT   PRIMARY KEY,
    until_ms BIGINT NOT NULL,
    level    BIGINT NOT NULL,
    cleared  BIGINT NOT NULL,
    reason   TEXT   NOT NULL,
    probe    BIGINT
);
CREATE TABLE rate_tickets (id BIGINT PRIMARY KEY CHECK (id = 1), next BIGINT NOT NULL);
INSERT INTO rate_tickets (id, next) VALUES (1, 1);

-- Durable flows: instances, their durable calls by ordinal, and the events
-- routed to flows that wait for them.
CREATE TABLE flows (
    id            BIGSERIAL PRIMARY KEY,
    script        TEXT NOT NULL,
    function      TEXT NOT NULL,
    key           TEXT NOT NULL,
    input         TEXT NOT NULL,
    status        TEXT NOT NULL,   -- ready | waiting | in_doubt | done | failed
    wake_at       BIGINT,
    waiting_for   TEXT,
    waiting_since BIGINT,
    current_step  TEXT,
    result        TEXT,
    last_error    TEXT,
    attempts      BIGINT NOT NULL DEFAULT 0,
    wakes         BIGINT NOT NULL DEFAULT 0,
    nudged        BIGINT NOT NULL DEFAULT 0,
    version       BIGINT NOT NULL,
    lease_owner   TEXT,
    lease_until   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL,
    UNIQUE (script, function, key)
);
CREATE INDEX flows_due ON flows (status, wake_at);

CREATE TABLE flow_steps (
    flow_id    BIGINT NOT NULL REFERENCES flows (id) ON DELETE CASCADE,
    ordinal    BIGINT NOT NULL,
    kind       TEXT NOT NULL,      -- step | sleep | wait | poll
    name       TEXT NOT NULL,
    status     TEXT NOT NULL,      -- started | waiting | done | rerun
    result     TEXT,
    detail     TEXT,
    started_at BIGINT NOT NULL,
    ended_at   BIGINT,
    PRIMARY KEY (flow_id, ordinal)
);

CREATE TABLE flow_inbox (
    id          BIGSERIAL PRIMARY KEY,
    script      TEXT NOT NULL,
    connector   TEXT NOT NULL,
    topic       TEXT NOT NULL,
    event_id    TEXT NOT NULL,
    event       TEXT NOT NULL,
    received_at BIGINT NOT NULL,
    flow_id     BIGINT,
    ordinal     BIGINT,
    UNIQUE (script, connector, topic, event_id)
);
CREATE INDEX flow_inbox_open ON flow_inbox (script, connector, topic, flow_id);
CREATE INDEX flow_inbox_claimed ON flow_inbox (flow_id, ordinal);

-- One row per schedule tick that fired anywhere: `every` fires once per
-- tick across all hosts sharing the store.
CREATE TABLE schedule_ticks (
    script   TEXT NOT NULL,
    function TEXT NOT NULL,
    tick     BIGINT NOT NULL,
    fired_by TEXT NOT NULL,
    PRIMARY KEY (script, function, tick)
);
