-- Failed sign-in guesses per account, kept in the database so that every
-- instance counts them together: passwords slow down exponentially after a
-- few failures, second-factor codes allow a few tries per window, and the
-- owner is emailed once a streak starts.
CREATE TABLE sign_in_guesses (
    user_id BIGINT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    password_failures INTEGER NOT NULL DEFAULT 0,
    password_wait_until TIMESTAMP,
    code_failures INTEGER NOT NULL DEFAULT 0,
    code_window_from TIMESTAMP,
    notified_at TIMESTAMP
);
