-- Where and how often records are pushed to a partner: its S3 bucket, its
-- LRS, or a webhook. `target` holds the non-secret settings as JSON.
CREATE TABLE partner_destinations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    record_kind TEXT NOT NULL,
    format TEXT NOT NULL,
    target TEXT NOT NULL,
    -- The S3 secret access key, the LRS password or the webhook signing secret.
    secret TEXT NOT NULL,
    every_minutes INTEGER NOT NULL,
    next_run_at TIMESTAMP NOT NULL,
    enabled BOOLEAN NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX partner_destinations_partner ON partner_destinations(partner_id);

-- The outbox: one row per send, unique by idempotency key. Its job (status,
-- attempts, last error, backoff, dead letters) lives in `jobs`.
CREATE TABLE partner_sends (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination_id BIGINT NOT NULL REFERENCES partner_destinations(id) ON DELETE CASCADE,
    idempotency_key TEXT NOT NULL UNIQUE,
    job_id BIGINT REFERENCES jobs(id) ON DELETE SET NULL,
    trigger TEXT NOT NULL,
    requested_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    payload_digest TEXT,
    record_count INTEGER,
    location TEXT,
    delivered_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX partner_sends_destination ON partner_sends(destination_id);
