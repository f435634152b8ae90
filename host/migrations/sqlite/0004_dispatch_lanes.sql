-- Lanes as columns of the dispatch row, so finding each lane's head is one
-- pass over an index instead of a correlated subquery per pending row
-- (which made dispatch slow down with the backlog).
ALTER TABLE dispatches ADD COLUMN connector TEXT NOT NULL DEFAULT '';
ALTER TABLE dispatches ADD COLUMN topic TEXT NOT NULL DEFAULT '';
UPDATE dispatches SET connector = (SELECT e.connector FROM events e WHERE e.seq = dispatches.event_seq),
                      topic     = (SELECT e.topic FROM events e WHERE e.seq = dispatches.event_seq);
CREATE INDEX dispatches_lane ON dispatches (status, subscriber, connector, topic, event_seq);
