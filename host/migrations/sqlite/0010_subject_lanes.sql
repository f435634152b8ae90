-- Lanes per subject: events about different things (orders, items, leads)
-- are delivered in parallel; order is kept per (subscriber, connector,
-- topic, subject). An event without a subject is in its topic's '' lane.
ALTER TABLE dispatches ADD COLUMN subject TEXT NOT NULL DEFAULT '';
UPDATE dispatches SET subject = COALESCE((SELECT e.subject FROM events e WHERE e.seq = dispatches.event_seq), '')
 WHERE status = 'pending';
DROP INDEX dispatches_lane;
CREATE INDEX dispatches_lane ON dispatches (status, subscriber, connector, topic, subject, event_seq);
