-- Attempts per action, keyed hash and minute, shared by every instance of the
-- site (web::ratelimit). Only the last two minutes are kept; the key is a
-- keyed hash, never an address or a login.
CREATE TABLE rate_windows (
    action TEXT NOT NULL,
    key_hash BIGINT NOT NULL,
    minute BIGINT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (action, key_hash, minute)
);
CREATE INDEX rate_windows_minute ON rate_windows(minute);
