-- Accounts warned that inactivity will delete them (RET-2); a sign-in after the
-- warning makes it moot and the next retention run removes the row.
CREATE TABLE inactivity_warnings (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    warned_at TIMESTAMP NOT NULL,
    delete_after TIMESTAMP NOT NULL
);
