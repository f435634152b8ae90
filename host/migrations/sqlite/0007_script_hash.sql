-- The SHA-256 (hex) of the file of a script's latest version: a load of
-- the same content keeps its version number instead of counting a restart
-- as a change. NULL for rows written before this (their next load counts).
ALTER TABLE scripts ADD COLUMN hash TEXT;
