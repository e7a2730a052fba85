-- A date of birth is asked for at sign-up (the age gate, ACC-9), but not every
-- account has one: staff an organization syncs in (SHR-7) hold only what the
-- organization sent, operator accounts were never asked, and an erased account
-- keeps none. SQLite cannot drop NOT NULL in place, so the table is rebuilt the
-- way its documentation prescribes (foreign keys off, outside diesel's
-- transaction, checked before commit).
PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE users_new (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    phone TEXT,
    company TEXT,
    date_of_birth DATE,
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    email_verified_at TIMESTAMP,
    terms_version TEXT NOT NULL,
    terms_accepted_at TIMESTAMP NOT NULL,
    last_sign_in_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO users_new (id, username, email, first_name, last_name, phone, company, date_of_birth, password_hash,
    status, email_verified_at, terms_version, terms_accepted_at, last_sign_in_at, created_at, updated_at)
SELECT id, username, email, first_name, last_name, phone, company,
    CASE WHEN status = 'erased' THEN NULL ELSE date_of_birth END, password_hash,
    status, email_verified_at, terms_version, terms_accepted_at, last_sign_in_at, created_at, updated_at
FROM users;
DROP TABLE users;
ALTER TABLE users_new RENAME TO users;
CREATE INDEX users_username_lower ON users (lower(username));
COMMIT;
PRAGMA foreign_keys = ON;
