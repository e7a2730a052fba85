-- The paths rewritten to routes and the accounts dropped from cookie choices
-- cannot come back; the column does, empty.
DROP INDEX support_requests_updated;
DROP INDEX campaign_events_time;
DROP INDEX cookie_choices_time;
ALTER TABLE cookie_choices ADD COLUMN user_id BIGINT REFERENCES users(id) ON DELETE CASCADE;
CREATE INDEX cookie_choices_user ON cookie_choices(user_id);
