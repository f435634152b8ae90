-- Per-connector key-value state for plugins (the WIT `kv` interface).
CREATE TABLE kv (
    connector TEXT NOT NULL,
    key       TEXT NOT NULL,
    value     BLOB NOT NULL,
    updated   INTEGER NOT NULL,
    PRIMARY KEY (connector, key)
);
