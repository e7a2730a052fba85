-- A learner's communication choices (COM-1, COM-2, RGT-3): marketing email
-- (opt-in, kept until withdrawn: RET-4), click and open tracking in it, and
-- an objection to profiling. No row means every one is off.
CREATE TABLE communication_preferences (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    marketing_email BOOLEAN NOT NULL,
    email_tracking BOOLEAN NOT NULL,
    object_profiling BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Every change of those choices, with how it was made.
CREATE TABLE communication_choices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    choice TEXT NOT NULL,
    value BOOLEAN NOT NULL,
    method TEXT NOT NULL,
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX communication_choices_user ON communication_choices(user_id, id);

-- Newsletter campaigns staff send to learners who opted in.
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    recipients INTEGER NOT NULL
);

-- Deliveries, opens and clicks, recorded only for learners who allowed tracking (sent: for all).
CREATE TABLE campaign_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    campaign_id BIGINT NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    url TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX campaign_events_campaign ON campaign_events(campaign_id, kind);
