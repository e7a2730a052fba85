-- Two-factor sign-in (ACC-5, SEC-6) and the account's security events.

-- An authenticator app: the sealed TOTP secret (SEC-2); confirmed once a
-- code from the app was entered; the last time step used, so a code works once.
CREATE TABLE totp_credentials (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    confirmed_at TIMESTAMP,
    last_step BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);

-- Ten single-use recovery codes per account, stored as hashes.
CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX recovery_codes_user ON recovery_codes(user_id);

-- Sign-in, step-up and enrolment are each a session second factor at a time.
ALTER TABLE sessions ADD COLUMN second_factor_at TIMESTAMP;

-- What happened to the account's security, shown to its owner.
CREATE TABLE security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    detail TEXT,
    ip TEXT,
    user_agent TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX security_events_user ON security_events(user_id, created_at);
