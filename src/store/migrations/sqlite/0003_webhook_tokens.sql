-- The tokens Rackbeat hands out when a webhook subscription is created, one per tenant and event
-- (`rbtx webhooks install` keeps them, the intake checks deliveries against them). They are
-- secrets, so they get a table of their own rather than sharing one with the sync's positions.
CREATE TABLE webhook_tokens (
    tenant TEXT NOT NULL,
    event  TEXT NOT NULL,
    token  TEXT NOT NULL,
    PRIMARY KEY (tenant, event)
);

-- Earlier versions kept them as checkpoints named `webhook token {event}`: move them here.
INSERT INTO webhook_tokens (tenant, event, token)
    SELECT tenant, substr(name, 15), value FROM checkpoints
    WHERE substr(name, 1, 14) = 'webhook token ';
DELETE FROM checkpoints WHERE substr(name, 1, 14) = 'webhook token ';
