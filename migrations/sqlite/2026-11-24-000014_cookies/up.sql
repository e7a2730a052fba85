-- Cookie choices (COM-3): every choice a visitor makes in the banner or on
-- the cookie settings page, under the random visitor id of their choice
-- cookie, and the account when they were signed in.
CREATE TABLE cookie_choices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    analytics BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX cookie_choices_visitor ON cookie_choices(visitor);
CREATE INDEX cookie_choices_user ON cookie_choices(user_id);

-- First-party analytics (COM-4), only for visitors who allowed them: no
-- account, no IP address; the country only when a GeoIP database is configured.
CREATE TABLE page_views (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor TEXT NOT NULL,
    path TEXT NOT NULL,
    browser TEXT NOT NULL,
    os TEXT NOT NULL,
    country TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX page_views_time ON page_views(created_at);
CREATE INDEX page_views_visitor ON page_views(visitor, id);
