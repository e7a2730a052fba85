-- Departures: a partner holds a learner's records under an identifier that
-- the gate no longer lets through (the learner withdrew, restricted sharing
-- or was erased). Every channel that carried the records carries the
-- departure: the pull feed, pushes (OneRoster `tobedeleted` rows, webhook
-- events, xAPI voiding statements). Rows stay after erasure: they hold the
-- identifier the partner knows, not who it was.
CREATE TABLE departures (
    id BIGSERIAL PRIMARY KEY,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL,
    enrollment_id BIGINT NOT NULL,
    run_id BIGINT NOT NULL REFERENCES course_runs(id),
    learner_id TEXT NOT NULL,
    learner_gone BOOLEAN NOT NULL,
    reason TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX departures_by_partner ON departures (partner_id, id);
CREATE INDEX departures_by_user ON departures (user_id, partner_id);

-- How far each push destination has been told, and what each send carries.
ALTER TABLE partner_destinations ADD COLUMN departures_sent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE partner_sends ADD COLUMN departures_from BIGINT;
ALTER TABLE partner_sends ADD COLUMN departures_to BIGINT;

-- The xAPI statement ids each LRS destination received, per enrollment:
-- what a departure voids.
CREATE TABLE partner_statements (
    destination_id BIGINT NOT NULL REFERENCES partner_destinations(id) ON DELETE CASCADE,
    statement_id TEXT NOT NULL,
    enrollment_id BIGINT NOT NULL,
    learner_id TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    PRIMARY KEY (destination_id, statement_id)
);
CREATE INDEX partner_statements_by_enrollment ON partner_statements (destination_id, enrollment_id);
