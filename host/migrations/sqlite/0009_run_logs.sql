-- A run's own log lines (script log::, plugin log lines and rate waits
-- during the run), bounded per run: `spoke runs show` and the status page
-- tell a run's story without grepping the host's log.
ALTER TABLE runs ADD COLUMN logs TEXT NOT NULL DEFAULT '[]';
-- The flow a run was a wake of, if any.
ALTER TABLE runs ADD COLUMN flow_key TEXT;
