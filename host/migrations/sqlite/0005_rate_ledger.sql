-- The rate ledger (host/src/rate_limit/ledger.rs): every process on this
-- store draws vendor budgets from these rows, so budgets hold across
-- processes and restarts.

-- Requests counted per granule of a window, by the time their response arrived.
CREATE TABLE rate_spent (
    bucket   TEXT    NOT NULL,  -- <credential>/<policy>
    window_s INTEGER NOT NULL,
    granule  INTEGER NOT NULL,  -- response time / granule length
    n        INTEGER NOT NULL,
    PRIMARY KEY (bucket, window_s, granule)
) WITHOUT ROWID;

-- Requests sent and not yet answered; a lease ends a dead process's claim.
CREATE TABLE rate_in_flight (
    ticket      INTEGER NOT NULL,
    bucket      TEXT    NOT NULL,
    n           INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    PRIMARY KEY (bucket, ticket)
) WITHOUT ROWID;

-- Vendor refusals: nothing is sent on a scope before until_ms.
CREATE TABLE rate_pauses (
    scope    TEXT    PRIMARY KEY,  -- a credential, or <credential>/<policy>
    until_ms INTEGER NOT NULL,
    level    INTEGER NOT NULL,
    cleared  INTEGER NOT NULL,
    reason   TEXT    NOT NULL,
    probe    INTEGER            -- the one ticket let through after the pause
);

-- Ticket numbers are never reused, so a late finish cannot touch another's claim.
CREATE TABLE rate_tickets (id INTEGER PRIMARY KEY CHECK (id = 1), next INTEGER NOT NULL);
INSERT INTO rate_tickets (id, next) VALUES (1, 1);
