-- Events are matched to subscribers when dispatched, not when received
-- (host/src/dispatch/route.rs): `routed` = 0 until then. Older events were
-- routed on arrival.
ALTER TABLE events ADD COLUMN routed INTEGER NOT NULL DEFAULT 1;
CREATE INDEX events_unrouted ON events (seq) WHERE routed = 0;

-- Retention finds old rows by time.
CREATE INDEX deliveries_received ON deliveries (received_at);
CREATE INDEX events_received ON events (received_at);
CREATE INDEX runs_started ON runs (started_at);
CREATE INDEX steps_at ON steps (at);

-- What each connector holds in kv, for its quota (kept in the same
-- transaction as every kv write).
CREATE TABLE kv_usage (
    connector TEXT PRIMARY KEY,
    keys      INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
);
INSERT INTO kv_usage (connector, keys, bytes)
    SELECT connector, COUNT(*), SUM(length(key) + length(value)) FROM kv GROUP BY connector;

-- A removed script keeps its row (so versions keep counting); the last
-- trigger change is shown by `spoke scripts`.
ALTER TABLE scripts ADD COLUMN removed_at INTEGER;
ALTER TABLE scripts ADD COLUMN trigger_change TEXT;

-- The process running a run, so the next start can tell an interrupted run
-- from one another process is still running.
ALTER TABLE runs ADD COLUMN pid INTEGER;
