-- Invitations an organization sends to people who join as its staff with an
-- account of their own (SHR-7). The link's token is kept only as a hash; it
-- works once, for 14 days, and joining is the person's explicit choice.
CREATE TABLE org_invitations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner_id BIGINT NOT NULL REFERENCES partners(id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    invited_by BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at TIMESTAMP NOT NULL,
    accepted_at TIMESTAMP,
    accepted_by BIGINT REFERENCES users(id) ON DELETE SET NULL
);
CREATE INDEX org_invitations_partner ON org_invitations(partner_id);
