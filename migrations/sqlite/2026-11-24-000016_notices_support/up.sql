-- Breach notices (SEC-5): emailed to the affected users and shown on the
-- home page until withdrawn; who was notified is kept as proof.
CREATE TABLE breach_notices (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    audience TEXT NOT NULL,
    recipients INTEGER NOT NULL,
    created_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    published_at TIMESTAMP NOT NULL,
    withdrawn_at TIMESTAMP
);
CREATE TABLE breach_recipients (
    notice_id BIGINT NOT NULL REFERENCES breach_notices(id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (notice_id, user_id)
);

-- Contact and support (COM-6): a request from the contact form, signed in
-- or not, and staff answers sent by email from the site.
CREATE TABLE support_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    subject TEXT NOT NULL,
    message TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX support_requests_status ON support_requests(status, id);
CREATE TABLE support_replies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id BIGINT NOT NULL REFERENCES support_requests(id) ON DELETE CASCADE,
    staff_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    body TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
