-- One dead letter per failing record and reason: a repeat counts and keeps the latest event, so a
-- record that fails at every catch-up stays one line for the operator.
ALTER TABLE dead_letters ADD COLUMN failures INTEGER NOT NULL DEFAULT 1;
ALTER TABLE dead_letters ADD COLUMN last_failed_at INTEGER;
-- The reason without what differs at every attempt (an API's request id): repeats compare by it.
ALTER TABLE dead_letters ADD COLUMN reason_key TEXT;
UPDATE dead_letters SET last_failed_at = failed_at, reason_key = reason;

-- The last body sent for a record, or the one the initial sync would send back for what it wrote,
-- so an update carries only the fields that differ from it.
ALTER TABLE bindings ADD COLUMN body TEXT;
