-- One row per script run.
CREATE TABLE runs (
    id          INTEGER PRIMARY KEY,
    script      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    function    TEXT NOT NULL,
    trigger     TEXT NOT NULL,      -- event:SEQ | schedule:SPEC | manual | http
    started_at  INTEGER NOT NULL,
    ended_at    INTEGER,
    outcome     TEXT,               -- ok | error | (NULL while running)
    error       TEXT,
    location    TEXT,               -- file:line of the error
    steps       TEXT NOT NULL DEFAULT '[]'  -- JSON list of step keys taken
);
CREATE INDEX runs_script ON runs (script, id);

-- Results of `step(key, ...)`, scoped per script: once stored, never run again.
CREATE TABLE steps (
    script  TEXT NOT NULL,
    key     TEXT NOT NULL,
    result  TEXT NOT NULL,
    run_id  INTEGER,
    at      INTEGER NOT NULL,
    PRIMARY KEY (script, key)
);

-- `state::get/set/delete`.
CREATE TABLE script_state (
    script  TEXT NOT NULL,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    updated INTEGER NOT NULL,
    PRIMARY KEY (script, key)
);

-- What the running host has loaded, for `spoke scripts`.
CREATE TABLE scripts (
    name       TEXT PRIMARY KEY,
    version    INTEGER NOT NULL,
    loaded_at  INTEGER NOT NULL,
    triggers   TEXT NOT NULL,
    error      TEXT,
    error_at   INTEGER
);
