-- Several hosts (or processes) on one store: a dispatch is claimed by one
-- host for a lease before it is delivered, so it is delivered by one host at
-- a time and a dead host's claims come free when the lease ends.
ALTER TABLE dispatches ADD COLUMN claimed_by TEXT;
ALTER TABLE dispatches ADD COLUMN claimed_until INTEGER NOT NULL DEFAULT 0;

-- Runs remember the machine they ran on: only that machine can tell whether
-- the process (pid) that left a run unfinished is gone.
ALTER TABLE runs ADD COLUMN machine TEXT;

-- One row per schedule tick that fired anywhere: `every` fires once per tick
-- across all hosts sharing the store.
CREATE TABLE schedule_ticks (
    script   TEXT NOT NULL,
    function TEXT NOT NULL,
    tick     INTEGER NOT NULL,   -- the tick's time, ms since 1970
    fired_by TEXT NOT NULL,
    PRIMARY KEY (script, function, tick)
);
