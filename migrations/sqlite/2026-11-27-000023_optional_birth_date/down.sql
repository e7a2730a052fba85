PRAGMA foreign_keys = OFF;
BEGIN;
CREATE TABLE users_old (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    email TEXT NOT NULL UNIQUE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    phone TEXT,
    company TEXT,
    date_of_birth DATE NOT NULL,
    password_hash TEXT NOT NULL,
    status TEXT NOT NULL,
    email_verified_at TIMESTAMP,
    terms_version TEXT NOT NULL,
    terms_accepted_at TIMESTAMP NOT NULL,
    last_sign_in_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO users_old SELECT id, username, email, first_name, last_name, phone, company,
    COALESCE(date_of_birth, '1900-01-01'), password_hash, status, email_verified_at, terms_version,
    terms_accepted_at, last_sign_in_at, created_at, updated_at FROM users;
DROP TABLE users;
ALTER TABLE users_old RENAME TO users;
CREATE INDEX users_username_lower ON users (lower(username));
COMMIT;
PRAGMA foreign_keys = ON;
