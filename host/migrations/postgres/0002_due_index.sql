-- `due` walks pending dispatches in event order and probes each one's lane
-- (dispatches_lane) for an earlier pending one.
CREATE INDEX dispatches_due ON dispatches (status, event_seq);
