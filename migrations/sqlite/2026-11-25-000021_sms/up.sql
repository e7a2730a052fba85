-- Codes by text message (ACC-5). The number serves security only; it is
-- sealed (SEC-2) and found again by a keyed hash when the carrier reports
-- STOP or START for it. Consent to texts is recorded when it is given.
CREATE TABLE sms_numbers (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    phone TEXT NOT NULL,
    phone_hash TEXT NOT NULL,
    consent_at TIMESTAMP NOT NULL,
    confirmed_at TIMESTAMP,
    stopped_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX sms_numbers_hash ON sms_numbers(phone_hash);

-- One-time codes sent by text: hashed, short-lived, single use.
CREATE TABLE sms_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    used_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX sms_codes_user ON sms_codes(user_id);

-- Texts written instead of sent when no SMS service is configured (demo).
CREATE TABLE sms_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    phone TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
