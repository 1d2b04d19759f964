-- The queue. An event is open while its state is 'pending' (waiting, or scheduled for retry at
-- not_before) or 'claimed' (leased to lease_owner until lease_until); it ends 'done',
-- 'superseded' (a newer event for the same key was claimed instead) or 'dead'.
CREATE TABLE events (
    id          BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant      TEXT    NOT NULL,
    entity      TEXT    NOT NULL,
    key         TEXT    NOT NULL,
    event       TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    received_at BIGINT  NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'claimed', 'done', 'superseded', 'dead')),
    not_before  BIGINT  NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    last_error  TEXT
);

-- Claims group the open events by key; finished events stay out of the index.
CREATE INDEX events_open ON events (tenant, entity, key, id)
    WHERE state IN ('pending', 'claimed');

-- One row per key ever queued: the row lock that serializes enqueues and claims of one key across
-- processes. Enqueues wait for it; claims skip a locked key (FOR UPDATE SKIP LOCKED).
CREATE TABLE keys (
    tenant TEXT NOT NULL,
    entity TEXT NOT NULL,
    key    TEXT NOT NULL,
    PRIMARY KEY (tenant, entity, key)
);

CREATE TABLE dead_letters (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id  BIGINT NOT NULL UNIQUE REFERENCES events (id),
    reason    TEXT   NOT NULL,
    mapping   TEXT,
    field     TEXT,
    failed_at BIGINT NOT NULL
);

CREATE TABLE bindings (
    tenant     TEXT   NOT NULL,
    direction  TEXT   NOT NULL,
    entity     TEXT   NOT NULL,
    source_key TEXT   NOT NULL,
    target_id  TEXT   NOT NULL,
    version    BIGINT,
    body_hash  TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant, direction, entity, source_key)
);

CREATE TABLE checkpoints (
    tenant TEXT NOT NULL,
    name   TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
