-- A minor's "yes" to sharing waits for their parent: the parent receives a
-- link to the exact text and categories and decides. Only the parent's
-- decision reaches the consent ledger.
CREATE TABLE parent_sharing_requests (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    purpose TEXT NOT NULL,
    scope TEXT NOT NULL,
    categories TEXT NOT NULL,
    text_id BIGINT NOT NULL REFERENCES consent_texts(id),
    parent_email TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    expires_at TIMESTAMP NOT NULL,
    decided_at TIMESTAMP,
    decision TEXT
);
CREATE INDEX parent_sharing_requests_user ON parent_sharing_requests(user_id);
