-- The activity log: one row per event a worker handled, for the operator's console. Rows are
-- appended a batch per commit and dropped after a while (`rbtx run` prunes them daily by `at`).
-- No foreign key to events: a row outlives what it tells of.
CREATE TABLE activity (
    id        BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant    TEXT    NOT NULL,
    event_id  BIGINT  NOT NULL,
    entity    TEXT    NOT NULL,
    key       TEXT    NOT NULL,
    event     TEXT    NOT NULL,
    outcome   TEXT    NOT NULL,
    message   TEXT,
    target_id TEXT,
    took_ms   BIGINT  NOT NULL,
    at        BIGINT  NOT NULL
);

-- The console reads a page newest first, by tenant, entity and outcome: each filter it combines
-- walks one of these backwards and stops at the page's end.
CREATE INDEX activity_tenant ON activity (tenant, id);
CREATE INDEX activity_tenant_entity ON activity (tenant, entity, id);
CREATE INDEX activity_tenant_outcome ON activity (tenant, outcome, id);
CREATE INDEX activity_entity ON activity (entity, id);
CREATE INDEX activity_outcome ON activity (outcome, id);
-- One event's outcomes (the page a retry opens).
CREATE INDEX activity_event ON activity (event_id, id);
-- Counts since a time, and the daily prune.
CREATE INDEX activity_at ON activity (at);
CREATE INDEX activity_tenant_at ON activity (tenant, at);

-- What the latest failure sent and was answered (JSON), when an API refused a request.
ALTER TABLE dead_letters ADD COLUMN detail TEXT;
-- Dead letters are listed latest failure first; every letter has had its time since 0002.
UPDATE dead_letters SET last_failed_at = failed_at WHERE last_failed_at IS NULL;
CREATE INDEX dead_letters_latest ON dead_letters (last_failed_at, id);
